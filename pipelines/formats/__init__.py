"""Source formats, one folder each (rlds/, lerobot/, hdf5/): reader, writer, export, validation."""

from pipelines.formats.base import (
    EXPORTERS,
    READERS,
    DuplicateEpisodeIdError,
    SourceReader,
    check_unique_episode_ids,
    open_reader,
    register_reader,
)
from pipelines.quarantine import Quarantined

__all__ = [
    "EXPORTERS", "READERS", "DuplicateEpisodeIdError", "Quarantined", "SourceReader", "check_unique_episode_ids",
    "open_reader", "register_reader",
]
