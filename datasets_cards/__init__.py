"""The contract between readers, annotators, flows and the trainer: cards and the canonical Episode."""

from datasets_cards.cards import (
    card_template,
    list_outputs,
    list_sources,
    load_output_card,
    load_source_card,
    sample_card_at,
    source_card_from_file,
)
from datasets_cards.codecs import decode_image, encode_jpeg, sha256_file
from datasets_cards.constants import output_dir
from datasets_cards.episode import GRIPPER_RAW, Episode, FrameSequence
from datasets_cards.errors import CardError, EpisodeError, FrameDecodeError, RunAbortError, SchemaVersionError
from datasets_cards.output import ColumnSpec, OutputCard, parse_type
from datasets_cards.source import SourceCard

__all__ = [
    "GRIPPER_RAW",
    "CardError",
    "ColumnSpec",
    "Episode",
    "EpisodeError",
    "RunAbortError",
    "FrameDecodeError",
    "FrameSequence",
    "OutputCard",
    "SchemaVersionError",
    "SourceCard",
    "card_template",
    "decode_image",
    "encode_jpeg",
    "list_outputs",
    "list_sources",
    "load_output_card",
    "load_source_card",
    "output_dir",
    "parse_type",
    "sample_card_at",
    "sha256_file",
    "source_card_from_file",
]
