"""A corpus location that cannot be read fails the run at once, in one line, before any reader loads.

Readers of remote corpora (TFDS on gs://) would otherwise start TensorFlow and end in a libcurl traceback.
"""

from __future__ import annotations

from datasets_cards import SourceCard, list_sources
from datasets_cards.constants import SAMPLE_PREFIX
from datasets_cards.errors import ConfigurationError
from pipelines.flows.hints import flag, sample_hint
from pipelines.io.location import location_problem


class SourceUnreachableError(FileNotFoundError, ConfigurationError):
    """The source's location does not exist or cannot be read from this machine."""


def check_source_reachable(source: str, card: SourceCard, location: str | None, pipeline: str) -> None:
    """Raise SourceUnreachableError naming the `location` parameter and the embedded sample to try instead.

    Checked for a built-in card (its default location or the one given) and for any given location; a card
    file's own location is its reader's business (a custom format may not read files at all)."""
    if location is None and source not in list_sources():
        return
    where = card.resolve_location(location)
    problem = location_problem(where)
    if problem is None:
        return
    sample = f"{SAMPLE_PREFIX}{card.name}"
    instead = (f", or run {sample_hint(pipeline, sample)} on the embedded sample"
               if sample in list_sources() and not card.name.startswith(SAMPLE_PREFIX) else "")
    raise SourceUnreachableError(f"{card.name} is not reachable at {where}: {problem}. Set "
                                 f"{flag('location', f'/path/to/{card.name}')} to where the corpus is{instead}")
