"""The output lease on an S3 server: two machines racing for one OUT, exactly one wins."""

from __future__ import annotations

import threading

import pytest

from pipelines.io.lease import LeaseHeldError, OutputLease, read_lease


def _other_machine(lease: OutputLease, host: str) -> OutputLease:
    lease.owner.update(host=host, boot_id=f"boot-{host}")  # what another machine would write
    return lease


def test_two_machines_race_for_one_s3_folder(s3_prefix):
    folder = f"{s3_prefix}/la/droid"
    leases = [_other_machine(OutputLease(folder, ttl_s=60), f"node{i}") for i in range(2)]
    start = threading.Barrier(2)
    outcome: dict[int, object] = {}

    def race(i: int) -> None:
        start.wait()
        try:
            outcome[i] = leases[i].acquire()
        except LeaseHeldError as e:
            outcome[i] = e

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [i for i, o in outcome.items() if isinstance(o, OutputLease)]
    lost = [i for i, o in outcome.items() if isinstance(o, LeaseHeldError)]
    assert len(won) == 1 and len(lost) == 1, outcome
    assert read_lease(folder).token == leases[won[0]].token
    leases[won[0]].check()
    # a third machine later: refused while the winner's lease lives, names the holder
    with pytest.raises(LeaseHeldError, match=f"node{won[0]}"):
        _other_machine(OutputLease(folder, ttl_s=60), "node9").acquire()
    leases[won[0]].release()
    assert read_lease(folder) is None


def test_dead_local_holder_on_s3_is_taken_over_at_once(s3_prefix):
    import subprocess
    import sys

    folder = f"{s3_prefix}/la/droid"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = OutputLease(folder, ttl_s=600)
    ghost.owner["pid"] = dead.pid  # this machine, a pid that no longer runs
    ghost.acquire()
    taker = OutputLease(folder, ttl_s=60).acquire()
    assert read_lease(folder).token == taker.token
    taker.release()


def test_expired_lease_of_another_machine_on_s3_is_taken_over(s3_prefix):
    folder = f"{s3_prefix}/x"
    _other_machine(OutputLease(folder, ttl_s=0.5, settle_s=0.05), "gone").acquire()
    with pytest.raises(LeaseHeldError):
        _other_machine(OutputLease(folder, ttl_s=60), "other").acquire()
    import time

    time.sleep(0.6)
    taker = _other_machine(OutputLease(folder, ttl_s=60), "other").acquire()
    assert read_lease(folder).token == taker.token
    taker.release()
