"""What a run may be given: numbers in range, no secrets among its options, and only options its pipeline knows.

The command line and the flow apply the same rules, so a deployment caller is held to them too.
Secrets come from the environment only (OPENAI_API_KEY, LABEL_STUDIO_API_KEY): an option named like
a credential at any depth, or holding a secret environment variable's value, is refused before
anything is written, and a deployment's recorded Prefect parameters get it redacted. An option the
pipeline does not declare (pipelines/options.py), or a value it refuses, stops the run before anything loads.
"""

from __future__ import annotations

import os
import re
from typing import Any

from prefect import get_run_logger
from prefect.context import FlowRunContext
from pydantic import ValidationError

from pipelines.base import PIPELINES
from pipelines.options import (
    effective_params,
    known_keys,
    run_options,
    unknown_key_message,
    validation_message,
)

LISTED = "`python -m pipelines options {pipeline}` lists them with types and defaults"


class RunArgumentError(ValueError):
    """An argument no run can use: a number out of range, or a secret among the options (never recorded)."""


# A key naming a secret, matched on its words (camelCase and any separator split): api_key, apiKey, x-api-key,
# hf_token, Authorization, password, client_secret ... but not max_tokens or text_threshold.
_SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|access_?key|private_?key|secret(?:_?key)?|token|password|passwd|"
                          r"authorization|auth|credentials?|bearer|cookie)(?:_|$)")
SECRET_ENVIRONMENT = ("OPENAI_API_KEY (an OpenAI-compatible endpoint: the VLM segmenter, the LLM phrase extractor) "
                      "or LABEL_STUDIO_API_KEY (Label Studio)")


def looks_secret(name: str) -> bool:
    """True for a key named like a credential (api_key, token, secret, password, authorization, ...)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return bool(_SECRET_NAME.search(re.sub(r"[^a-z0-9]+", "_", words.lower())))


def secret_options(options: Any, environ: dict[str, str] | None = None) -> list[str]:
    """Where `options` hold a secret: the dotted path of every key named like one, at any depth, and of every
    string holding the value of a secret environment variable (one named like a credential, 8+ characters)."""
    env = os.environ if environ is None else environ
    planted = {v for k, v in env.items() if looks_secret(k) and len(v) >= 8}
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                where = f"{path}.{key}" if path else str(key)
                if looks_secret(key):
                    found.append(where)
                else:
                    walk(inner, where)
        elif isinstance(value, (list, tuple)):
            for i, inner in enumerate(value):
                walk(inner, f"{path}[{i}]")
        elif isinstance(value, str) and any(secret in value for secret in planted):
            found.append(f"{path} (holds the value of a secret environment variable)")

    walk(options or {}, "")
    return found


REDACTED = "<redacted>"


def redact_secrets(options: Any, environ: dict[str, str] | None = None) -> Any:
    """`options` with the value of every secret-named key, and every secret environment value inside a string,
    replaced by "<redacted>" (what `secret_options` finds)."""
    env = os.environ if environ is None else environ
    planted = sorted((v for k, v in env.items() if looks_secret(k) and len(v) >= 8), key=len, reverse=True)

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if looks_secret(k) else clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, str):
            for secret in planted:
                value = value.replace(secret, REDACTED)
        return value

    return clean(options)


def redact_recorded_options(options: Any) -> None:
    """A deployment caller's parameters reach Prefect before the flow body runs: overwrite the secrets in this
    flow run's recorded parameters (best effort; the run is refused either way)."""
    run = FlowRunContext.get()
    if run is None or run.flow_run is None:
        return
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.flow_run.id, parameters={**run.flow_run.parameters,
                                                                "options": redact_secrets(options)})
    except Exception as e:  # noqa: BLE001  a server that refuses the update must not hide the real error
        get_run_logger().warning(f"could not redact the secret options from this flow run's parameters: {e!r}")


def check_run_arguments(limit: int | None, episodes_per_shard: int, retries: int, options: Any) -> None:
    """RunArgumentError for what the command line refuses too, so deployment callers are held to the same rules."""
    for name, value, low in (("limit", limit, 1), ("episodes_per_shard", episodes_per_shard, 1), ("retries", retries, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise RunArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    secrets = secret_options(options)
    if secrets:
        raise RunArgumentError(
            f"option {', '.join(repr(s) for s in secrets)} looks like a secret: secrets are never passed as options "
            f"(they would be written into manifest.json, card.md and the Prefect flow-run parameters); "
            f"set the environment variable instead: {SECRET_ENVIRONMENT}")


def check_card_secrets(card: Any) -> None:
    """RunArgumentError when a source card's params hold a secret (a card file's `params.la.extra.vlm.api_key`):
    the card is written into manifest.json with the run's config."""
    secrets = secret_options(card.params.model_dump(mode="json"))
    if secrets:
        raise RunArgumentError(
            f"card {card.name!r}: params {', '.join(repr(s) for s in secrets)} look like a secret: a card is written "
            f"into manifest.json; set the environment variable instead: {SECRET_ENVIRONMENT}")



def check_options(pipeline: str, card: Any, options: Any) -> None:
    """RunArgumentError, before anything loads, for an option `pipeline` does not know (naming the valid keys and
    the closest one), a value its params or run-time keys refuse, or what its preflight finds missing (an
    endpoint). The command line and the flow both call it, so a deployment caller is held to it too."""
    options = dict(options or {})
    cls = PIPELINES.get(pipeline)
    known = known_keys(pipeline, cls.options_model)
    unknown = [key for key in options if key not in known]
    if unknown:
        raise RunArgumentError(f"{pipeline}: {unknown_key_message(unknown[0], known)} "
                               f"({LISTED.format(pipeline=pipeline)})")
    problems = []
    try:
        params = effective_params(pipeline, card, options)
    except ValidationError as e:
        problems.append(validation_message(e))
    try:
        run_options(cls.options_model, options)
    except ValidationError as e:
        problems.append(validation_message(e))
    if problems:
        raise RunArgumentError(f"{pipeline}: invalid option: {'; '.join(problems)} "
                               f"({LISTED.format(pipeline=pipeline)})")
    try:
        cls.preflight(params, options)
    except ValueError as e:
        raise RunArgumentError(str(e)) from e


def options_by_pipeline(pipelines: list[str], card: Any, options: Any) -> dict[str, dict[str, Any]]:
    """Each pipeline's share of `options` (a key goes to every pipeline that knows it), each checked by
    `check_options`; RunArgumentError for a key none of them knows."""
    options = dict(options or {})
    known = {p: set(known_keys(p, PIPELINES.get(p).options_model)) for p in pipelines}
    every = sorted(set().union(*known.values()))
    for key in options:
        if key not in every:
            raise RunArgumentError(f"{', '.join(pipelines)}: {unknown_key_message(key, every)} "
                                   f"({LISTED.format(pipeline=' / '.join(pipelines))})")
    shares = {p: {k: v for k, v in options.items() if k in known[p]} for p in pipelines}
    for pipeline, share in shares.items():
        check_options(pipeline, card, share)
    return shares
