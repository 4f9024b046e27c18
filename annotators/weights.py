"""Model weights on disk: a local folder or the Hugging Face cache, never a download at run time.

Every model family (detection, vision encoders) resolves its checkpoint here, so a missing one
always stops with the same message: where it looked and the command that fetches it.
"""

from __future__ import annotations

from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """The model's weights are neither at a local path nor in the Hugging Face cache."""


def fetch_command(model: str) -> str:
    return f"huggingface-cli download {model}   (or, with huggingface_hub ≥ 1.0: hf download {model})"


def resolve_weights(model: str, family: str) -> Path:
    """A local folder holding `model` (the path itself, or its snapshot in the HF cache). Never downloads."""
    from huggingface_hub import constants, snapshot_download

    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").exists():
            return path
        raise MissingWeightsError(f"{path} exists but holds no config.json: it is not a saved transformers model "
                                  f"({family}).")
    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception as e:  # the hub raises several types for "not cached" (and for ids that are not repo names)
        raise MissingWeightsError(
            f"{family} weights {model!r} not found. Looked for a local folder {str(path)!r} and in the Hugging Face "
            f"cache {constants.HF_HUB_CACHE!r} (HF_HOME / HF_HUB_CACHE move it); nothing is downloaded at run time. "
            f"On a machine with internet run:\n    {fetch_command(model)}\n"
            f"then copy the cache (or the downloaded folder) here and pass its path as the model "
            f"(--option model=/path/to/folder)."
        ) from e


def require_weights(models: dict[str, str]) -> None:
    """Check every {family: model} a pipeline needs before any loads: one MissingWeightsError naming all that are
    missing and the commands that fetch them (a user fixes them at once, not one per run)."""
    missing = {}
    for family, model in models.items():
        try:
            resolve_weights(model, family)
        except MissingWeightsError as e:
            missing[family] = (model, e)
    if not missing:
        return
    if len(missing) == 1:
        raise next(iter(missing.values()))[1]
    from huggingface_hub import constants

    lines = [f"  {family}: {model!r}" for family, (model, _) in missing.items()]
    fetch = [f"    {fetch_command(model)}" for model, _ in missing.values()]
    raise MissingWeightsError(
        "model weights not found (looked for local folders and in the Hugging Face cache "
        f"{constants.HF_HUB_CACHE!r}; nothing is downloaded at run time):\n" + "\n".join(lines)
        + "\nOn a machine with internet run:\n" + "\n".join(fetch)
        + "\nthen copy the cache here, or pass the folders as options (e.g. --option sam_model=/path/to/folder).")
