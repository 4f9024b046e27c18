"""torchrun with 2 CPU processes (gloo) on tiny shards: even batches, identical parameters on every rank,
exact resume on the same world size (parameters) and on another (the samples seen)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.factories import make_la_folder

ROOT = Path(__file__).resolve().parents[2]
BATCH = 4
ARGS = ["--recipe", "la", "--batch-size", str(BATCH), "--device", "cpu", "--lr", "3e-3", "--warmup", "2",
        "--lr-decay-steps", "12", "--log-interval", "0", "--holdout-fraction", "0.25", "--window", "2",
        "--buffer-size", "8", "--ckpt-interval", "6", "--model.dim", "32", "--model.layers", "1", "--model.heads", "2",
        "--model.horizon", "4", "--model.flow-steps", "2"]


def run(data: Path, out: Path, steps: int, nproc: int, stats: Path) -> dict[int, dict]:
    """`torchrun --nproc-per-node nproc -m trainer ...`; returns what each rank saw ($TRAINER_STATS)."""
    env = {**os.environ, "TRAINER_STATS": str(stats), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--rdzv-backend", "c10d",
           "--rdzv-endpoint", "127.0.0.1:0", "-m", "trainer", "--data", str(data), "--out", str(out),
           "--steps", str(steps), *ARGS]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone prints the result
    return {r: json.loads(Path(f"{stats}.rank{r}.json").read_text()) for r in range(nproc)}


def covered(stats: dict, world: int) -> list[tuple[int, int]]:
    """(epoch, global sample index) of every sample the job trained on, in order."""
    return [(e, s + i) for e, s in stats["samples"] for i in range(world * BATCH)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-la")
    make_la_folder(root, episodes=20)
    return root


def test_two_processes_even_batches_same_parameters_and_exact_resume(data, tmp_path):
    full = run(data, tmp_path / "full", 12, 2, tmp_path / "full")
    assert full[0]["world_size"] == 2
    assert full[0]["state_sha256"] == full[1]["state_sha256"]  # DDP kept the ranks identical
    assert full[0]["batches"] == full[1]["batches"]  # even: as many batches per epoch on every rank
    assert len(full[0]["batches"]) >= 2  # the run crossed an epoch boundary without a hang
    assert full[0]["samples"] == full[1]["samples"]

    # Killed after step 6 (its checkpoint), resumed on 2 processes: the same parameters as the run never stopped.
    run(data, tmp_path / "part", 6, 2, tmp_path / "part")
    shutil.copytree(tmp_path / "part", tmp_path / "one")
    resumed = run(data, tmp_path / "part", 12, 2, tmp_path / "resumed")
    assert resumed[0]["state_sha256"] == full[0]["state_sha256"] == resumed[1]["state_sha256"]
    assert resumed[0]["samples"] == full[0]["samples"][6:]

    # Resumed on 1 process: it continues at the same sample of the same epoch, every sample once, in order.
    one = run(data, tmp_path / "one", 12, 1, tmp_path / "one")
    after_two, after_one = covered({"samples": full[0]["samples"][6:]}, 2), covered(one[0], 1)
    epoch = after_two[0][0]
    assert after_one[0] == after_two[0]
    two_e, one_e = [x for x in after_two if x[0] == epoch], [x for x in after_one if x[0] == epoch]
    assert one_e[: len(two_e)] == two_e  # one process may also read the part of the tail two processes drop
    assert len(set(after_one)) == len(after_one)
