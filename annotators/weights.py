"""Model weights on disk: a local folder or the Hugging Face cache, never a download at run time.

Every model family (detection, segmentation, vision encoders) resolves its checkpoint here, so a missing one
always stops with the same message: where it looked, the option that points the pipeline at another folder,
and, for a hub id, the command that fetches it. `identify_weights` says which weights a run used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from datasets_cards.manifest import ModelRecord

# A Hugging Face repo id: "name" or "owner/name", letters, digits, "-", "_", "." (no leading "." or "/").
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Files whose bytes are the model: its config and its tensors (top level of the folder, as transformers reads them).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
# Hashing reads files up to this size whole, and of a larger one its size, first and last HASH_EDGE bytes: a
# checkpoint of several GB is identified in a fraction of a second (a change that keeps a file's size and both
# ends goes unseen; this names weights, it does not guard against tampering).
HASH_WHOLE = 64 << 20
HASH_EDGE = 8 << 20


class MissingWeightsError(FileNotFoundError):
    """The model's weights are neither at a local path nor in the Hugging Face cache."""


@dataclass(frozen=True)
class Weights:
    """A checkpoint a pipeline loads, and the run option that points it at another folder."""

    family: str  # e.g. "Grounding DINO"
    model: str  # hub id (looked up in the local cache) or a local folder
    option: str = "model"  # `--option <this>=PATH`
    device: str = "auto"  # as configured; "auto" = cuda when visible, else cpu
    dtype: str = "bfloat16"  # on CUDA; elsewhere every family computes in float32


def is_hub_id(model: str) -> bool:
    """True when `model` reads as a Hugging Face repo id ("IDEA-Research/grounding-dino-tiny"), not a path."""
    return bool(_HUB_ID.match(model)) and not model.startswith((".", "~"))


def fetch_command(model: str) -> str:
    return f"huggingface-cli download {model}   (or, with huggingface_hub ≥ 1.0: hf download {model})"


def option_hint(option: str) -> str:
    return f"--option {option}=PATH (-o {option}=PATH)"


def resolve_weights(model: str, family: str, option: str = "model") -> Path:
    """A local folder holding `model` (the path itself, or its snapshot in the HF cache). Never downloads.

    MissingWeightsError names `option`, the run option that points the pipeline at another folder.
    """
    from huggingface_hub import constants, snapshot_download

    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").exists():
            return path
        raise MissingWeightsError(f"{family} weights: {path} exists but holds no config.json, so it is not a saved "
                                  f"transformers model; pass a folder that is with {option_hint(option)}.")
    if not is_hub_id(model):
        raise MissingWeightsError(f"{family} weights: the folder {str(path)!r} does not exist; pass a folder holding "
                                  f"a saved model (config.json and its weights) with {option_hint(option)}.")
    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception as e:  # the hub raises several types for "not cached" (and for ids that are not repo names)
        raise MissingWeightsError(
            f"{family} weights {model!r} not found: no local folder of that name, and not in the Hugging Face "
            f"cache {constants.HF_HUB_CACHE!r} (HF_HOME / HF_HUB_CACHE move it); nothing is downloaded at run "
            f"time. On a machine with internet run:\n    {fetch_command(model)}\n"
            f"then copy the cache here, or pass the downloaded folder with {option_hint(option)}."
        ) from e


def require_weights(weights: list[Weights]) -> None:
    """Check every checkpoint a pipeline needs before any loads: one MissingWeightsError naming all that are
    missing, the options that point at other folders and, for hub ids, the commands that fetch them (a user
    fixes them at once, not one per run)."""
    missing = {}
    for w in weights:
        try:
            resolve_weights(w.model, w.family, w.option)
        except MissingWeightsError as e:
            missing[w] = e
    if len(missing) == 1:
        raise next(iter(missing.values()))
    if not missing:
        return
    lines = [f"  {w.family}: {error}" for w, error in missing.items()]
    raise MissingWeightsError("model weights not found (nothing is downloaded at run time):\n" + "\n".join(lines))


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as f:
        if size <= HASH_WHOLE:
            digest.update(f.read())
        else:
            digest.update(f.read(HASH_EDGE))
            f.seek(size - HASH_EDGE)
            digest.update(f.read(HASH_EDGE))


def weights_sha256(folder: Path) -> str:
    """sha256 over config.json and the folder's weight files (names, sizes, bytes; size-capped, see HASH_WHOLE)."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and (p.name == "config.json" or p.name.endswith(WEIGHT_SUFFIXES)))
    for path in files:
        _hash_file(digest, path)
    return digest.hexdigest()


def identify_weights(weights: Weights) -> ModelRecord:
    """Which weights `weights` names (its folder, the HF snapshot's revision, the sha256 of its files), and the
    device and dtype it runs in (MissingWeightsError as `resolve_weights`)."""
    from annotators.devices import pick_device

    folder = resolve_weights(weights.model, weights.family, weights.option).resolve()
    device = pick_device(weights.device)
    return ModelRecord(
        family=weights.family, model=weights.model, folder=str(folder),
        revision=folder.name if folder.parent.name == "snapshots" else None,  # <cache>/models--o--n/snapshots/<commit>
        sha256=weights_sha256(folder), device=device,
        dtype=weights.dtype if device.startswith("cuda") else "float32",
    )
