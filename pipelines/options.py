"""What `--option KEY=VALUE` may name for a pipeline, with types, defaults and help.

Two kinds of keys, one table (`python -m pipelines options PIPELINE`):
- a field of the pipeline's params (`datasets_cards/params/<pipeline>.py`): overrides the card's value
  (nested fields merge); the help is the field's comment, read from the params module's source;
- a run-time key the pipeline itself reads (`Pipeline.options_model`, a RunOptions subclass declared in
  `pipelines/<pipeline>/pipeline.py`): device, decode workers, montage size, caches, ...

`effective_params` and `run_options` are what a pipeline runs with; `option_problems` says what is wrong with
a set of options before anything loads (the flow and the command line refuse the run with it).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datasets_cards import SourceCard
from datasets_cards.params import PIPELINE_PARAMS, Params, with_overrides


class RunOptions(BaseModel):
    """Run-time keys of a pipeline (not card params): recorded in the manifest, checked before anything loads.

    A subclass lists in NOT_HASHED the keys that change how a run goes but not its rows (threads, device,
    caches, previews): they stay out of the config hash, so a resume may change them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    NOT_HASHED: ClassVar[frozenset[str]] = frozenset()


def unhashed_keys(model: type[RunOptions]) -> frozenset[str]:
    """Every NOT_HASHED key of `model` and of the option classes it is made of."""
    return frozenset().union(*(vars(cls).get("NOT_HASHED", ()) for cls in model.__mro__))


def _decode_workers() -> int:
    return min(8, os.cpu_count() or 1)


class ModelOptions(RunOptions):
    """Keys of the pipelines that run a model on frames."""

    NOT_HASHED = frozenset({"device", "decode_workers"})  # a resume on another GPU or machine is the same run

    device: str = Field("auto", description='torch device: "auto" (cuda when visible, else cpu), "cpu", "cuda:1"')
    decode_workers: int = Field(default_factory=_decode_workers, ge=1,
                                description="threads decoding and encoding frames (default: min(8, CPUs))")


class LlmSettings(RunOptions):
    """The `llm` option: an OpenAI-compatible endpoint for `phrase_extractor: llm` (the key: $OPENAI_API_KEY)."""

    model: str | None = Field(None, description="chat model name (default gpt-4o-mini)")
    base_url: str | None = Field(None, description="endpoint URL (default $OPENAI_BASE_URL, else OpenAI's)")


class PhraseOptions(RunOptions):
    """Keys of the pipelines that take a target phrase from the instruction (rules or an LLM)."""

    NOT_HASHED = frozenset({"llm_cache"})

    llm: LlmSettings | None = Field(None, description='phrase_extractor=llm: {"model": ..., "base_url": ...} '
                                                      "(over the card's extra.llm)")
    llm_cache: str | None = Field(None, description="phrase_extractor=llm: folder or fsspec URL of cached replies")


def params_class(pipeline: str) -> type[Params] | None:
    """The card params class of `pipeline`, or None when it has none (a test pipeline under another name)."""
    return PIPELINE_PARAMS.get(pipeline) if pipeline in PIPELINE_PARAMS.names() else None


def effective_params(pipeline: str, card: SourceCard, options: Mapping[str, Any]) -> Params | None:
    """The card's params of `pipeline` with the options that name its fields laid over them (ValidationError)."""
    params = getattr(card.params, pipeline, None)
    return None if params is None else with_overrides(params, options)


def run_options(model: type[RunOptions], options: Mapping[str, Any]) -> RunOptions:
    """The run-time keys `model` declares, validated (ValidationError); the rest of `options` is not its part."""
    return model.model_validate({k: v for k, v in options.items() if k in model.model_fields})


def known_keys(pipeline: str, model: type[RunOptions]) -> list[str]:
    params = params_class(pipeline)
    return sorted({*(params.model_fields if params else ()), *model.model_fields})


def unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown option {key!r}: {hint}valid keys: {', '.join(known)}"


def validation_message(error: ValidationError) -> str:
    """One line from pydantic's errors: where, what, and the value it got."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        got = "" if "got" in message else f" (got {problem['input']!r})"  # params validators name the value
        parts.append(f"{where}: {message}{got}" if where else message)
    return "; ".join(parts)


# -- the table ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OptionRow:
    key: str
    type: str
    default: str
    help: str
    kind: str  # "card" (a params field: overrides the card) or "run" (read by the pipeline at run time)


def _type_name(annotation: Any) -> str:
    if type(annotation) is type or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return annotation.__name__
    text = str(annotation).replace("NoneType", "None")
    return re.sub(r"\b(?:[a-z_][\w]*\.)+(\w+)", r"\1", text)  # typing.Literal, pipelines.options.LlmSettings


def _field_comments(cls: type[BaseModel]) -> dict[str, str]:
    """Field → the comment that ends its line in the class body (params classes document fields that way)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments: dict[str, str] = {}
    block, last_end = "", -1  # the comment block above a run of fields, and where the previous field ended
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        for prior in reversed(lines[:node.lineno - 1]):
            if not prior.strip().startswith("#") or prior.strip().startswith("#  "):  # "#   ..." continues a field's
                break
            above.insert(0, prior.strip().lstrip("# "))
        if above:
            block = " ".join(above)
        elif node.lineno - 1 != last_end:  # a blank line or other code: the block no longer applies
            block = ""
        line = lines[node.end_lineno - 1]
        comments[node.target.id] = line.split("  # ", 1)[1].strip() if "  # " in line else block
        last_end = node.end_lineno
    return comments


def _rows(model: type[BaseModel], kind: str) -> list[OptionRow]:
    comments = _field_comments(model) if kind == "card" else {}
    rows = []
    for key, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
        nested = default.__doc__.strip().splitlines()[0] if isinstance(default, BaseModel) and default.__doc__ else ""
        rows.append(OptionRow(key, _type_name(field.annotation), repr(shown),
                              field.description or comments.get(key) or nested, kind))
    return rows


def option_rows(pipeline: str, model: type[RunOptions]) -> list[OptionRow]:
    """Every key `--option` takes for `pipeline`: its card params' fields, then its run-time keys."""
    params = params_class(pipeline)
    return [*(_rows(params, "card") if params else []), *_rows(model, "run")]
