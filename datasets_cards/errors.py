"""Errors raised at the contract boundary; each message names the field and value."""

from __future__ import annotations


class CardError(ValueError):
    """A card is unknown or invalid."""


class SchemaVersionError(ValueError):
    """Data was written under another version of an output card.

    The message says which versions met and how to migrate (re-run the flow into a
    new output folder, or pin the older suite version that wrote it).
    """


class EpisodeError(ValueError):
    """An episode breaks the canonical Episode's invariants; it is quarantined, not fatal."""

    def __init__(self, reason: str, episode_id: str | None = None):
        self.reason = reason
        self.episode_id = episode_id
        super().__init__(f"{episode_id}: {reason}" if episode_id else reason)


class FrameDecodeError(EpisodeError):
    """An encoded frame could not be decoded."""


class RunAbortError(RuntimeError):
    """A fault that will fail every unit the same way (a rejected API key, a malformed request).

    Raised from inside a unit; the flow stops submitting work and ends the run with this
    one line (exit code 1) instead of burning through the corpus unit after unit.
    """


class ConfigurationError(Exception):
    """A mixin for faults of the run's configuration (a server that does not answer, an output folder written
    with another config, a corpus location that is not there): retrying the same task cannot help."""
