"""Source formats, one folder each (rlds/, lerobot/, hdf5/): reader, writer, export, validation."""

from pipelines.formats.base import EXPORTERS, READERS, SourceReader, open_reader, register_reader
from pipelines.quarantine import Quarantined

__all__ = ["EXPORTERS", "READERS", "Quarantined", "SourceReader", "open_reader", "register_reader"]
