"""The output lease: one run at a time writes an output folder, on a local disk or an object store.

A lease is a small JSON object in the folder it guards, `<folder>/.lease.json`:

    {"owner": {"host": ..., "pid": ..., "run_id": ..., "token": ..., "boot_id": ..., "pid_ns": ...},
     "acquired": ISO time, "renewed": ISO time, "expires": ISO time, "expires_at": epoch seconds, "ttl_s": ...}

Use it as a context manager (the annotate flow holds one for its whole run):

    with OutputLease("OUT/la/droid", run_id=flow_run_id) as lease:  # acquire; a thread renews it
        ...                                                          # write the folder
        lease.check()                                                # still ours? before a commit point
                                                                     # released on exit, failures included

- `acquire()` refuses with `LeaseHeldError`, naming the holder and when its lease expires, while
  another owner's lease is live. A lease is stale, and taken over, once it has expired (its holder
  stopped renewing: killed, or its machine is gone), or at once when its holder ran on this machine
  and is gone (same host, boot and pid namespace, and that pid no longer runs, or it is this process
  and the lease's run has ended).
- A daemon thread renews the lease every ttl/3 while the run lives; it re-reads the lease first, and
  if another owner holds it now, marks the lease lost: `check()` then raises `LeaseLostError`.
- `release()` deletes the lease if it is still ours; a storage that refuses (read-only) leaves it to
  expire, and this process takes it over at once.

Race window. fsspec has no atomic create-if-absent on object stores, so acquiring is: read, write
our lease, wait `settle_s`, read it back, and only the owner read back wins. Two runs can both win
only if one's read→write gap spans the other's whole write→settle→read-back (a very slow PUT). The
loser of such a race is caught later, not never: its renewal sees the other owner and marks the
lease lost, and the flow's `check()` before it marks the output complete refuses to finish. Expiry
compares wall clocks of different machines: keep the TTL well above their skew. (With a real
create-if-absent, e.g. S3 conditional writes or GCS generation preconditions, the window closes.)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Self

import fsspec

from datasets_cards.storage import read_text, write_text_atomic

LEASE_FILE = ".lease.json"
DEFAULT_TTL_S = 120.0  # a killed holder's lease on another machine blocks the folder at most this long
TTL_ENV = "ROBOT_ANNOTATE_LEASE_TTL_S"  # overrides DEFAULT_TTL_S (cluster operators)
DEFAULT_SETTLE_S = 0.25  # wait between writing the lease and reading it back (see "Race window")

logger = logging.getLogger(__name__)
_LIVE_TOKENS: set[str] = set()  # leases this process holds now (an ended run's lease is stale at once here)


class LeaseHeldError(RuntimeError):
    """Another live run holds the folder's lease; the message names it and when its lease expires."""


class LeaseLostError(RuntimeError):
    """This run's lease was taken over (it stopped renewing for longer than its TTL)."""


def _read_first_line(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Lease:
    """What a lease file says."""

    owner: dict[str, Any]
    expires_at: float  # epoch seconds
    acquired: str = ""

    @property
    def token(self) -> str:
        return str(self.owner.get("token", ""))

    def holder(self) -> str:
        o = self.owner
        return f"{o.get('host', '?')} pid {o.get('pid', '?')}, run {o.get('run_id', '?')}"

    def expiry(self, now: float | None = None) -> str:
        left = self.expires_at - (time.time() if now is None else now)
        when = "ago" if left < 0 else "from now"
        return f"expires {_iso(self.expires_at)} ({abs(left):.0f} s {when})"


def read_lease(folder: str) -> Lease | None:
    """The lease of `folder`, or None when there is none or it is unreadable (a damaged lease holds nothing)."""
    path = f"{folder.rstrip('/')}/{LEASE_FILE}"
    try:
        text = read_text(path)
        if text is None:
            return None
        data = json.loads(text)
        expires_at = float(data["expires_at"])
        if not 0 <= expires_at < 1e11:  # NaN, or past year 5000: no clock wrote that
            raise ValueError(f"expires_at {expires_at!r} is no time")
        return Lease(owner=dict(data["owner"]), expires_at=expires_at, acquired=data.get("acquired", ""))
    except (ValueError, KeyError, TypeError) as e:
        logger.warning(f"{path} is damaged ({type(e).__name__}: {e}): treated as no lease")
        return None


class OutputLease:
    """The lease on one output folder (any fsspec URL): acquire, renew in the background, release.

    `run_id` names the run for people (the Prefect flow run id); identity is a fresh token per lease.
    """

    def __init__(self, folder: str, *, run_id: str | None = None, ttl_s: float | None = None,
                 settle_s: float = DEFAULT_SETTLE_S):
        self.folder = folder.rstrip("/")
        self.path = f"{self.folder}/{LEASE_FILE}"
        self.ttl_s = float(ttl_s if ttl_s is not None else os.environ.get(TTL_ENV, DEFAULT_TTL_S))
        if self.ttl_s <= 0:
            raise ValueError(f"lease TTL must be > 0 s, got {self.ttl_s}")
        self.settle_s = settle_s
        self.token = uuid.uuid4().hex
        self.owner = {
            "host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id or self.token[:12],
            "token": self.token, "boot_id": _read_first_line("/proc/sys/kernel/random/boot_id"),
            "pid_ns": _pid_namespace(),
        }
        self.acquired = ""
        self.held = False
        self.lost: str | None = None  # why the lease is no longer ours, once the renewal saw it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the three operations --------------------------------------------------------------------
    def acquire(self) -> Self:
        """Take the lease, or raise LeaseHeldError naming the live holder; see the module doc for stale leases."""
        current = read_lease(self.folder)
        if current is not None and current.token != self.token:
            why = self._stale(current)
            if why is None:
                raise LeaseHeldError(
                    f"{self.folder} is being written by another run ({current.holder()}); its lease "
                    f"{current.expiry()}. Wait for that run, or write to another output; a killed run's "
                    f"lease ({self.path}) is taken over once it expires"
                )
            logger.warning(f"taking over the stale lease of {current.holder()} on {self.folder}: {why}")
        self.acquired = _iso(time.time())
        self._write()
        time.sleep(self.settle_s)
        back = read_lease(self.folder)
        if back is None or back.token != self.token:
            winner = back.holder() if back else "nobody (the lease vanished)"
            raise LeaseHeldError(f"{self.folder}: another run took the lease at the same moment ({winner}); "
                                 "this run stops before writing anything")
        self.held, self.lost = True, None
        _LIVE_TOKENS.add(self.token)
        return self

    def renew(self) -> None:
        """Push the expiry ttl_s ahead, if the lease is still ours (else mark it lost and raise LeaseLostError)."""
        current = read_lease(self.folder)
        if current is None or current.token != self.token:
            self.lost = (f"the lease on {self.folder} was taken over by {current.holder()}" if current
                         else f"the lease {self.path} disappeared")
            raise LeaseLostError(self.lost)
        self._write()

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours. Never raises: at worst the lease expires."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        _LIVE_TOKENS.discard(self.token)
        if not self.held:
            return
        self.held = False
        try:
            current = read_lease(self.folder)
            if current is not None and current.token == self.token:
                fs, p = fsspec.core.url_to_fs(self.path)
                fs.rm(p)
        except Exception as e:  # noqa: BLE001  read-only or unreachable storage: the lease expires by itself
            logger.warning(f"could not release the lease {self.path} ({type(e).__name__}: {e}); it expires "
                           f"within {self.ttl_s:.0f} s (at once for runs on this machine)")

    def check(self) -> None:
        """Raise LeaseLostError unless the lease is still ours (call before a commit point)."""
        if self.lost:
            raise LeaseLostError(f"{self.lost}; this run does not mark the output complete, re-run it")
        current = read_lease(self.folder)
        if current is None or current.token != self.token:
            who = current.holder() if current else "nobody"
            raise LeaseLostError(f"the lease on {self.folder} is now held by {who}; this run does not mark "
                                 "the output complete, re-run it")

    # -- context manager: acquire + renewal thread, release on exit --------------------------------
    def __enter__(self) -> Self:
        self.acquire()
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.token[:8]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals ---------------------------------------------------------------------------------
    def _write(self) -> None:
        now = time.time()
        lease = {"owner": self.owner, "acquired": self.acquired, "renewed": _iso(now),
                 "expires": _iso(now + self.ttl_s), "expires_at": now + self.ttl_s, "ttl_s": self.ttl_s}
        write_text_atomic(self.path, json.dumps(lease, indent=2))

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except LeaseLostError as e:
                logger.error(f"{e}: this run will not mark the output complete")
                return
            except Exception as e:  # noqa: BLE001  a transient storage error: try again at the next tick
                logger.warning(f"could not renew the lease {self.path} ({type(e).__name__}: {e})")

    def _stale(self, lease: Lease) -> str | None:
        """Why `lease` (another owner's) holds nothing any more, or None while its holder may be alive."""
        if lease.expires_at <= time.time():
            return f"it {lease.expiry()}"
        o, me = lease.owner, self.owner
        same_machine = o.get("host") == me["host"] and o.get("boot_id") and o.get("boot_id") == me["boot_id"]
        if not same_machine or not o.get("pid_ns") or o.get("pid_ns") != me["pid_ns"]:
            return None  # another machine (or container): only expiry says its holder is gone
        pid = int(o.get("pid", -1))
        if pid == os.getpid():  # this process's run that ended without deleting it (a read-only disk)
            return None if lease.token in _LIVE_TOKENS else "its run in this process has ended"
        return None if _pid_alive(pid) else f"its process {pid} on this machine is gone"
