"""The contract between readers, annotators, flows and the trainer: cards and the canonical Episode."""

from datasets_cards.constants import output_dir
from datasets_cards.episode import Episode, FrameSequence, decode_image
from datasets_cards.errors import CardError, EpisodeError, FrameDecodeError, SchemaVersionError
from datasets_cards.output import ColumnSpec, OutputCard, parse_type
from datasets_cards.registry import (
    card_template,
    list_outputs,
    list_sources,
    load_output_card,
    load_source_card,
    source_card_from_file,
)
from datasets_cards.source import SourceCard

__all__ = [
    "CardError",
    "ColumnSpec",
    "Episode",
    "EpisodeError",
    "FrameDecodeError",
    "FrameSequence",
    "OutputCard",
    "SchemaVersionError",
    "SourceCard",
    "card_template",
    "decode_image",
    "list_outputs",
    "list_sources",
    "load_output_card",
    "load_source_card",
    "output_dir",
    "parse_type",
    "source_card_from_file",
]
