"""One line per failure on the terminal: Prefect's retry notices, tracebacks and restatements go to the run log."""

from __future__ import annotations

import logging

from pipelines.cli import run_log


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
