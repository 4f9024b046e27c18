"""Run the suite's CLI in its own process, as a user types it, and say why when it does not finish."""

from __future__ import annotations

import signal
import subprocess

import pytest


def run_cli(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`command` with its output captured. A run that is still going after `timeout` seconds fails the test
    with every thread's stack (faulthandler, on SIGABRT); a process that exited while something it started
    holds its output open is named as such."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**env, "PYTHONFAULTHANDLER": "1"})
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        exited = process.poll()
        if exited is None:
            process.send_signal(signal.SIGABRT)  # faulthandler prints each thread's stack to stderr
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        what = (f"exited ({exited}) but a process it started kept its output open" if exited is not None
                else "did not finish; its threads")
        pytest.fail(f"{' '.join(command[1:])} {what} after {timeout:.0f} s:\n{stderr[-30000:]}\n{stdout[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
