"""`python -m trainer --recipe la --data OUT/la/<source> --steps N --out CKPT_DIR [--model.dim 256 ...]`.

Several GPUs (or CPU processes): `torchrun --nproc-per-node N -m trainer ...` (see trainer/train.py).
A mixture: `--data OUT/future/droid:0.7,OUT/future/egodex:0.3` or `--data mixture.yaml` (trainer/data.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

from datasets_cards.manifest import (
    IncompleteOutputError,
    ManifestError,
    ShardIntegrityError,
)
from trainer.models import ModelConfig
from trainer.train import CheckpointError, TrainConfig, train


def _add_fields(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    for f in dataclasses.fields(cls):
        if f.name == "model":
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = type(default)
        if default is None:  # an optional int (num_workers): "auto" or "none" keeps the default
            parser.add_argument(f"--{prefix}{f.name}".replace("_", "-"), dest=f"{prefix}{f.name}", default=None,
                                type=lambda s: None if s.lower() in ("auto", "none", "") else int(s))
        elif kind is bool:
            parser.add_argument(f"--{prefix}{f.name}", type=lambda s: s.lower() in ("1", "true", "yes"), default=default)
        else:
            parser.add_argument(f"--{prefix}{f.name}".replace("_", "-"), dest=f"{prefix}{f.name}", type=kind, default=default)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train a reference recipe on an output folder.")
    _add_fields(parser, TrainConfig)
    _add_fields(parser, ModelConfig, "model.")
    args = vars(parser.parse_args(argv))
    model = ModelConfig(**{k.removeprefix("model."): v for k, v in args.items() if k.startswith("model.")})
    cfg = TrainConfig(**{k: v for k, v in args.items() if not k.startswith("model.")}, model=model)
    try:
        result = train(cfg)
    except (CheckpointError, ShardIntegrityError, ManifestError, IncompleteOutputError) as e:
        raise SystemExit(f"error: {e}") from None  # one line naming the file, exit code 1
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the job
        print(json.dumps({"final_loss": result["losses"][-1] if result["losses"] else None, "eval": result["eval"]}))


if __name__ == "__main__":
    main()
