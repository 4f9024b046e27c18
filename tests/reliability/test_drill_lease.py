"""The drill on the output lease (issue 12, part 9): one run at a time per output folder.

The lease itself on a local folder (what it does on s3:// or gs:// is the same code through fsspec):
a second owner refuses while the first lives, naming it; an expired lease, or one whose holder was
killed on this machine, is taken over; renewal and loss. Then the annotate flow holding it: a second
run refuses while the first is running, the lease is gone after a run and after a failed one, and a
run whose lease was taken over never marks the output complete.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datasets_cards.manifest import Manifest
from pipelines.cli import app
from pipelines.flows import annotate as flow_module
from pipelines.io.lease import (
    LEASE_FILE,
    LeaseHeldError,
    LeaseLostError,
    OutputLease,
    read_lease,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE, PIPELINE = "sample-droid", "la"
OPTIONS = {"plots": 0, "review": False}


def foreign_lease(folder: Path, *, expires_in: float, host: str = "elsewhere", run_id: str = "their-run") -> None:
    """A lease file written by a run on another machine."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"host": host, "pid": 4242, "run_id": run_id, "token": "t" * 32, "boot_id": "b", "pid_ns": "pid:[1]"}
    (folder / LEASE_FILE).write_text(json.dumps({"owner": owner, "expires_at": time.time() + expires_in}))


# -- the lease ------------------------------------------------------------------------------------------------


def test_a_second_owner_refuses_while_the_first_lives_naming_it(tmp_path):
    with OutputLease(str(tmp_path), run_id="first-run", settle_s=0) as first:
        with pytest.raises(LeaseHeldError) as refused:
            OutputLease(str(tmp_path), run_id="second-run", settle_s=0).acquire()
        assert read_lease(str(tmp_path)).token == first.token  # untouched
    message = str(refused.value)
    assert f"{socket.gethostname()} pid {os.getpid()}, run first-run" in message and "expires" in message
    assert str(tmp_path) in message and "second-run" not in message


def test_a_live_lease_of_another_machine_is_respected(tmp_path):
    foreign_lease(tmp_path, expires_in=60)
    with pytest.raises(LeaseHeldError, match=r"elsewhere pid 4242, run their-run\); its lease expires .* from now"):
        OutputLease(str(tmp_path), settle_s=0).acquire()


def test_an_expired_lease_is_taken_over(tmp_path):
    foreign_lease(tmp_path, expires_in=-1)
    lease = OutputLease(str(tmp_path), run_id="mine", settle_s=0).acquire()
    held = read_lease(str(tmp_path))
    assert held.token == lease.token and held.owner["run_id"] == "mine" and held.expires_at > time.time()
    lease.release()
    assert not (tmp_path / LEASE_FILE).exists()


def test_a_damaged_lease_holds_nothing(tmp_path):
    (tmp_path / LEASE_FILE).write_text('{"owner": {"host"')
    with OutputLease(str(tmp_path), settle_s=0) as lease:
        assert read_lease(str(tmp_path)).token == lease.token


def test_a_killed_holder_on_this_machine_is_taken_over_at_once(tmp_path):
    lease = OutputLease(str(tmp_path))
    if not (lease.owner["boot_id"] and lease.owner["pid_ns"]):
        pytest.skip("no /proc here: a killed holder's lease is taken over when it expires")
    script = ("import sys, time; from pipelines.io.lease import OutputLease; "
              "OutputLease(sys.argv[1], run_id='doomed', ttl_s=600, settle_s=0).acquire(); print('held', flush=True); "
              "time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeldError, match="run doomed"):  # alive: refused
            OutputLease(str(tmp_path), settle_s=0).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert read_lease(str(tmp_path)).owner["run_id"] == "doomed"  # the kill left its lease behind ...
    with OutputLease(str(tmp_path), settle_s=0) as taken:  # ... 600 s from expiry, yet taken over now
        assert read_lease(str(tmp_path)).token == taken.token


def test_the_lease_is_renewed_while_held_and_deleted_on_release(tmp_path):
    with OutputLease(str(tmp_path), ttl_s=0.6, settle_s=0):
        first = read_lease(str(tmp_path)).expires_at
        time.sleep(0.5)  # past one renewal (every ttl/3)
        assert read_lease(str(tmp_path)).expires_at > first
    assert not (tmp_path / LEASE_FILE).exists()


def test_a_lease_taken_over_is_noticed_and_not_deleted_by_its_old_owner(tmp_path):
    with OutputLease(str(tmp_path), ttl_s=0.6, settle_s=0) as lease:
        foreign_lease(tmp_path, expires_in=60, run_id="usurper")
        time.sleep(0.5)  # the renewal re-reads the lease first, and sees the new owner
        assert lease.lost and "usurper" in lease.lost
        with pytest.raises(LeaseLostError, match="usurper"):
            lease.check()
    assert read_lease(str(tmp_path)).owner["run_id"] == "usurper"


# -- the annotate flow holding it -------------------------------------------------------------------------------


def _needs_sample() -> None:
    from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, GROUND_TRUTH_DIR

    if not (DEFAULT_DATA_DIR / "droid" / GROUND_TRUTH_DIR / "episodes.parquet").exists():
        pytest.skip("no generated sample: run `make sample-data`")
    pytest.importorskip("tensorflow_datasets", reason="reading the RLDS sample needs the `tfds` extra")


def run(out: Path, **kw):
    args = {"source": SOURCE, "pipeline": PIPELINE, "out": str(out), "limit": 2, "episodes_per_shard": 1,
            "options": OPTIONS, "retries": 0}
    return flow_module.annotate(**(args | kw))


def test_a_second_run_refuses_while_the_first_is_running_naming_it(tmp_path, monkeypatch):
    """Issue 9: two runs on one output used to both finish, one's shards under the other's checksums."""
    _needs_sample()
    target = tmp_path / PIPELINE / SOURCE
    in_finish, go_on = threading.Event(), threading.Event()
    merge = flow_module.merge_quarantine

    def slow_merge(*args, **kwargs):
        in_finish.set()
        assert go_on.wait(120)
        return merge(*args, **kwargs)

    monkeypatch.setattr(flow_module, "merge_quarantine", slow_merge)
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(manifest=run(tmp_path)))
    thread.start()
    try:
        assert in_finish.wait(300), "the first run never reached its finish"
        holder = read_lease(str(target)).owner["run_id"]
        with pytest.raises(LeaseHeldError, match=f"run {holder}"):
            run(tmp_path)
        args = ["annotate", SOURCE, "--pipeline", PIPELINE, "--out", str(tmp_path), "--limit", "2",
                "--episodes-per-shard", "1", "-o", "plots=0", "-o", "review=false"]
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 1 and "Traceback" not in refused.output
        first_line = refused.output.strip().splitlines()[0]
        assert first_line.startswith(f"error: {target} is being written by another run") and holder in first_line
    finally:
        go_on.set()
        thread.join(300)
    assert first["manifest"].complete and not (target / LEASE_FILE).exists()
    assert Manifest.load(str(target)).damaged_shards(str(target)) == {}


def test_the_lease_is_released_after_a_run_and_after_failed_ones(tmp_path, monkeypatch):
    _needs_sample()
    target = tmp_path / PIPELINE / SOURCE
    assert run(tmp_path).complete and not (target / LEASE_FILE).exists()

    def broken_merge(*args, **kwargs):
        raise RuntimeError("the finish broke")

    with monkeypatch.context() as scoped:
        scoped.setattr(flow_module, "merge_quarantine", broken_merge)
        with pytest.raises(RuntimeError, match="the finish broke"):
            run(tmp_path)
    assert not (target / LEASE_FILE).exists()
    with pytest.raises(flow_module.ConfigMismatchError):  # lav changes the rows' layouts: a hashed option
        run(tmp_path, options={**OPTIONS, "lav": True})
    assert not (target / LEASE_FILE).exists()


def test_a_run_whose_lease_was_taken_over_does_not_mark_the_output_complete(tmp_path, monkeypatch):
    _needs_sample()
    target = tmp_path / PIPELINE / SOURCE
    merge = flow_module.merge_quarantine

    def usurped_merge(*args, **kwargs):
        foreign_lease(target, expires_in=60, run_id="usurper")  # another run took it while this one stalled
        return merge(*args, **kwargs)

    monkeypatch.setattr(flow_module, "merge_quarantine", usurped_merge)
    with pytest.raises(LeaseLostError, match="usurper"):
        run(tmp_path)
    assert not Manifest.load(str(target)).complete
    assert read_lease(str(target)).owner["run_id"] == "usurper"  # left to its owner


def test_a_lease_file_that_is_not_utf8_holds_nothing(tmp_path):
    (tmp_path / LEASE_FILE).write_bytes(b"\xff\xfe{not json")
    assert read_lease(str(tmp_path)) is None
    with OutputLease(str(tmp_path), run_id="ours", ttl_s=30):
        assert read_lease(str(tmp_path)).owner["run_id"] == "ours"
    assert not (tmp_path / LEASE_FILE).exists()


def test_units_still_running_finish_before_the_lease_is_released_when_the_run_stops(tmp_path, monkeypatch):
    """A failure while recording a shard (here: the manifest refuses it) must not leave units writing on
    after the lease is gone: they are stopped and waited for first."""
    _needs_sample()
    events: list[tuple[str, float]] = []
    annotate_episodes, release = flow_module._annotate_episodes, OutputLease.release

    def slow_units(pipe, items, unit, *args, **kwargs):
        if unit.index:  # every unit but the first is still writing when the first one lands
            time.sleep(3)
        try:
            return annotate_episodes(pipe, items, unit, *args, **kwargs)
        finally:
            events.append((f"unit {unit.index}", time.monotonic()))

    def refuse(self, record):
        raise RuntimeError("the manifest refuses the shard")

    def released(self):
        events.append(("released", time.monotonic()))
        release(self)

    monkeypatch.setattr(flow_module, "_annotate_episodes", slow_units)
    monkeypatch.setattr(Manifest, "add_shard", refuse)
    monkeypatch.setattr(OutputLease, "release", released)
    with pytest.raises(RuntimeError, match="refuses the shard"):
        run(tmp_path, limit=3)
    order = [name for name, _ in sorted(events, key=lambda e: e[1])]
    assert order[-1] == "released" and len(order) == 4, order  # three units, then the release
