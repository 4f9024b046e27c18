"""Output cards: the Arrow schema, version and meaning of each produced dataset.

The schema written to every shard is built from the card (never inferred from
the rows), so the trainer and the shard writer agree by construction.

Column types use a small grammar:
    string | binary | bool | int8..int64 | uint8 | float16 | float32 | float64
    list<T>                  variable-length list
    T[N]                     fixed-size list of N (e.g. float16[768])
    struct<a:T,b:T>          struct with named fields
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "binary": pa.binary(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
}


def split_top_level(text: str, sep: str = ",") -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_type(text: str) -> pa.DataType:
    """Parse a column type of the card grammar into a pyarrow type."""
    t = text.strip()
    if t in _PRIMITIVES:
        return _PRIMITIVES[t]
    if t.endswith("]") and "[" in t:
        inner, size = t[:-1].rsplit("[", 1)
        return pa.list_(parse_type(inner), int(size))
    if t.startswith("list<") and t.endswith(">"):
        return pa.list_(parse_type(t[5:-1]))
    if t.startswith("struct<") and t.endswith(">"):
        fields = []
        for part in split_top_level(t[7:-1]):
            name, _, sub = part.partition(":")
            fields.append(pa.field(name.strip(), parse_type(sub)))
        return pa.struct(fields)
    raise ValueError(f"unknown column type {text!r}; known primitives: {sorted(_PRIMITIVES)}")


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    description: str
    nullable: bool = False
    # A binary column whose values are one encoded image each (JPEG or PNG): README.md declares it an
    # `Image` feature, so `datasets` decodes it to a PIL image (pipelines/hub_card.py).
    image: bool = False

    @field_validator("type")
    @classmethod
    def _parses(cls, v: str) -> str:
        parse_type(v)
        return v

    @model_validator(mode="after")
    def _image_is_binary(self) -> ColumnSpec:
        if self.image and self.type != "binary":
            raise ValueError(f"column {self.name!r}: `image: true` needs type binary, not {self.type!r}")
        return self

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, parse_type(self.type), nullable=self.nullable)


class OutputCard(BaseModel):
    """One produced dataset. See datasets_cards/outputs/*.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str  # semantic version of the schema; the trainer refuses other majors
    paper: str  # where the dataset is described
    description: str
    columns: list[ColumnSpec]
    key: list[str]  # columns that identify a row uniquely (checked by the writer)
    card_template: str  # markdown template (Jinja2) rendered into card.md
    # The Hub's task categories of the dataset (README.md's YAML header, pipelines/hub_card.py).
    task_categories: list[str] = Field(default_factory=lambda: ["robotics"])
    row_group_rows: int = 1024  # rows per Parquet row group (smaller for image-heavy cards)
    row_group_per_write: bool = False  # also end a row group at every write_rows call (the flow writes one episode
    #                                   per call: one row group per episode, read back episode by episode)
    # Model frames (la: state steps) in one work unit, about a minute of model time on one GPU at the rate
    # docs/scale.md names; pipelines/units.py turns it into episodes per unit for each source.
    unit_frames: int = Field(default=8192, ge=1)
    dictionary_encoding: bool = True  # False for high-entropy numbers (float16 tokens), where it only costs time
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _unique(cls, v: list[ColumnSpec]) -> list[ColumnSpec]:
        names = [c.name for c in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        return v

    @property
    def major_version(self) -> int:
        return int(self.version.split(".")[0])

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [c.arrow_field() for c in self.columns],
            metadata={"output_card": self.name, "output_card_version": self.version},
        )

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"output card {self.name!r} has no column {name!r}; columns: {[c.name for c in self.columns]}")
