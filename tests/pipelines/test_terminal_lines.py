"""One line per failure on the terminal: Prefect's retry notices, tracebacks and restatements go to the run log."""

from __future__ import annotations

import logging

from pipelines.cli import quiet_library_notices, run_log
from pipelines.flows.annotate import _rates


def _record(message: str, *args, exc: bool = False) -> logging.LogRecord:
    info = (RuntimeError, RuntimeError("disk on fire"), None) if exc else None
    record = logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, message, args, info)
    # What Prefect's run logger adds to each record; its console handler's format names them.
    record.__dict__.update(task_run_name="annotate-unit-0", task_run_id="t", flow_run_name="f", flow_run_id="f",
                           task_name="annotate-unit", flow_name="annotate")
    return record


def test_the_terminal_gets_the_flows_line_and_the_log_gets_everything(tmp_path, capsys):
    terminal = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(terminal)
    try:
        with run_log(tmp_path / "run.log") as log:
            for record in (
                _record("Task run failed with %s: %r - Retry %s/%s will start %s", "exception",
                        RuntimeError("disk on fire"), 1, 2, "2.0 second(s) from now"),
                _record("Encountered exception during execution: %r", RuntimeError("disk on fire"), exc=True),
                _record("Finished in state Failed('Task run encountered an exception RuntimeError: disk on fire')"),
                _record("unit 1 of 2 [0:2] failed: %r", RuntimeError("disk on fire")),
            ):
                root.handle(record)
    finally:
        root.removeHandler(terminal)
    shown = [line for line in capsys.readouterr().err.splitlines() if "disk on fire" in line]
    assert shown == ["unit 1 of 2 [0:2] failed: RuntimeError('disk on fire')"]
    assert log.read_text().count("disk on fire") >= 4  # the run log keeps every one, traceback included


def test_library_notices_leave_the_terminal_but_not_the_run_log_and_verbose_shows_everything(tmp_path, capsys):
    terminal = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(terminal)
    notice = "Concurrency limits ['gpu'] do not exist - skipping acquisition."
    try:
        with run_log(tmp_path / "verbose.log", verbose=True):
            root.handle(_record("Encountered exception during execution: %r", RuntimeError("disk on fire"), exc=True))
            root.handle(_record(notice))
        quiet_library_notices()
        with run_log(tmp_path / "quiet.log") as log:
            root.handle(_record(notice))
            root.handle(_record("Starting temporary server on http://127.0.0.1:8441"))
            root.handle(_record("unit 1 of 1 [0:2] done"))
    finally:
        root.removeHandler(terminal)
    shown = capsys.readouterr().err
    assert shown.count(notice) == 1 and "disk on fire" in shown  # the verbose run shows both ...
    assert "temporary server" not in shown and "unit 1 of 1 [0:2] done" in shown  # ... the quiet one neither
    assert notice in log.read_text() and "temporary server" in log.read_text()


def test_rates_and_eta_come_from_the_units_this_run_finished():
    assert _rates(8, 200, 10.0, landed=2, left=3) == "0.80 episodes/s, 20.0 rows/s, ETA 0:00:15"
    assert _rates(4, 0, 2.0, landed=1, left=0).endswith("ETA 0:00:00")
