"""Every GPU measurement of the suite in one command, under a hard time budget: `make bench-gpu`.

Each stage calls an existing benchmark's measure() (gaze_speed, pixel_speed, pixel_memory,
future_speed, trainer_gpu, la_speed, readers) in its own child process, killed when its slice
of the budget runs out; such a stage is reported as "out of time" (or "failed", with the
error's last line), never left out. Every row is computed from numbers measured in this run,
on this device: ours / baseline (the peer-style loop), ours / limit (the model alone), or an
absolute value (frames/s, a fraction), checked against the issue's target.

Budget (`--budget`, default 600 s: 10 minutes on one H100/H200): each stage gets a fixed share
(SHARE below; the 2 % left covers the parent), capped by what is left of the whole; with
`--stages` naming a subset, their shares are scaled up to fill the same budget. On the GPU
profile: gaze 120 s, its resolution × batch sweep 48 s, pixel 108 s, the SAM 2 track memory
36 s, future 120 s, each trainer recipe 30 s, la 12 s, the reader 24 s. Models are
the real architectures with random weights (compute does not depend on weight values), detections
capped so random scores do not change the work.

    python -m benchmarks.gpu_suite                       # GPU: profile "gpu" on cuda (make bench-gpu)
    python -m benchmarks.gpu_suite --device cpu          # the same table on CPU, profile "cpu" (real
                                                         #   architectures, few frames; budget 3600 s)
    python -m benchmarks.gpu_suite --device cpu --profile tiny --budget 300   # small models (the test)

Writes OUT/suite.json (every stage's raw result and the rows) and OUT/suite.md (the table), and
prints the table. Needs `make install`, a CUDA build of torch for the GPU, and the committed sample.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The share of the budget each stage may use (sums to 0.98).
SHARE = {"gaze": 0.20, "gaze-scaling": 0.08, "pixel": 0.18, "pixel-memory": 0.06, "future": 0.20,
         "trainer-la": 0.05, "trainer-gaze": 0.05, "trainer-future": 0.05, "trainer-pixel": 0.05,
         "la": 0.02, "reader": 0.04}
DEFAULT_BUDGET = {"gpu": 600.0, "cpu": 3600.0, "tiny": 600.0}
# Sizes per profile: gpu = what fits 10 min on one H100/H200; cpu = real architectures, few frames
# (2 cores); tiny = small models (the test). Keys are each measure()'s arguments.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "gpu": {
        "gaze": {"batch_size": 16, "episodes": 12, "frames": 64},
        "gaze-scaling": {"scaling_batches": [1, 8, 32], "scaling_frames": 64},
        "pixel": {"frames": 128, "batches": [8, 32], "repeats": 2},
        "pixel-memory": {"frames": [100, 500]},
        "future": {"batch_size": 256, "frames": 4096, "stock_frames": 256, "tower_batches": 8,
                   "episode_frames": 300, "workers": 8},
        "trainer": {"steps": 100, "future_episodes": 20},  # future rows are 256 KiB (64 × 2,048 fp16): 480 of them
        "la": {"repeat": 3}, "reader": {"repeat": 2},
    },
    "cpu": {
        "gaze": {"batch_size": 4, "episodes": 1, "frames": 2},
        "gaze-scaling": {"scaling_batches": [1, 4], "scaling_frames": 4, "upscale_frames": 1},
        "pixel": {"frames": 2, "batches": [2], "repeats": 1},
        "pixel-memory": {"frames": [100, 1000]},
        "future": {"batch_size": 4, "frames": 8, "stock_frames": 4, "tower_batches": 2, "episode_frames": 4,
                   "workers": 2},
        "trainer": {},
        "la": {"repeat": 3}, "reader": {"repeat": 2},
    },
    "tiny": {
        "gaze": {"batch_size": 4, "episodes": 1, "frames": 2, "small": True},
        "gaze-scaling": {"scaling_batches": [1, 2], "scaling_frames": 2, "small": True,
                         "resolutions": ["LIBERO", "DROID"]},
        "pixel": {"frames": 2, "batches": [2], "repeats": 1, "smoke": True},
        "pixel-memory": {"frames": [5, 10]},
        "future": {"smoke": True, "batch_size": 4, "frames": 8, "stock_frames": 2, "tower_batches": 1,
                   "episode_frames": 4, "workers": 1},
        "trainer": {"steps": 4, "la_episodes": 8, "gaze_episodes": 4, "future_episodes": 4, "pixel_episodes": 2,
                    "frames": 4},
        "la": {"repeat": 1}, "reader": {"repeat": 1, "limit": 2},
    },
}
TARGET_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


# ---- the stages: each runs in a child process and returns a JSON-able dict ----------------------------------

def run_gaze(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.gaze_speed import measure

    return measure(device, **sizes)


def run_gaze_scaling(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.gaze_speed import (
        ROBOT_FRAMES,
        resolution_scaling,
        save_random_grounding_dino_tiny,
    )

    names = sizes.get("resolutions") or list(ROBOT_FRAMES)
    with tempfile.TemporaryDirectory(prefix="gaze-scaling-") as tmp:
        folder = save_random_grounding_dino_tiny(Path(tmp) / "model", {"green", "ball"}, 800, 1333,
                                                 sizes.get("small", False))
        rows = resolution_scaling(folder, device, sizes["scaling_batches"], sizes["scaling_frames"],
                                  {n: ROBOT_FRAMES[n] for n in names}, sizes.get("upscale_frames"))
    return {"scaling": rows}


def run_pixel(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.pixel_speed import measure

    return measure(device, **sizes)


def run_pixel_memory(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.pixel_memory import run_child

    settings = argparse.Namespace(device=device, model=None, threads=None if device.startswith("cuda") else 1)
    return {"runs": [run_child(n, True, settings) for n in sizes["frames"]]}


def run_future(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.future_speed import measure

    return measure(device, **sizes)


def run_trainer(recipe: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def run(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
        from benchmarks.trainer_gpu import GPU, SMOKE, measure

        base = GPU if device.startswith("cuda") else SMOKE
        return measure(recipe, {**base, **sizes}, workers=None)  # None: the trainer's default worker count

    return run


def run_la(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.la_speed import measure

    return measure(**sizes)


def run_reader(device: str, sizes: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.readers import measure

    return measure("sample-droid", None, sizes.get("limit"), sizes["repeat"])


STAGES: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "gaze": run_gaze, "gaze-scaling": run_gaze_scaling, "pixel": run_pixel, "pixel-memory": run_pixel_memory,
    "future": run_future, **{f"trainer-{r}": run_trainer(r) for r in ("la", "gaze", "future", "pixel")},
    "la": run_la, "reader": run_reader,
}


def stage_sizes(profile: str, stage: str) -> dict[str, Any]:
    return dict(SIZES[profile]["trainer" if stage.startswith("trainer-") else stage])


# ---- rows: ratios from the measured numbers -----------------------------------------------------------------

@dataclass
class Row:
    stage: str
    what: str  # what the ratio or value is
    value: float  # ours / reference, or the measured value itself when reference is None
    ours: float | None = None
    reference: float | None = None
    unit: str = ""
    target: str = ""  # e.g. ">= 5": the target for this row (on a GPU)
    passed: bool | None = None

    @classmethod
    def ratio(cls, stage: str, what: str, ours: float, reference: float, unit: str, target: str = "") -> Row:
        return cls(stage, what, ours / reference, ours, reference, unit, target).checked()

    def checked(self) -> Row:
        if self.target:
            op, bound = self.target.split()
            self.passed = TARGET_OPS[op](self.value, float(bound))
        return self


def gaze_rows(r: dict[str, Any]) -> list[Row]:
    return [Row.ratio("gaze", "ours / peer loop", r["b_ours_fps"], r["a_peer_fps"], "frames/s", ">= 5"),
            Row.ratio("gaze", "ours / model alone", r["b_ours_fps"], r["c_model_fps"], "frames/s", ">= 0.8"),
            Row("gaze", "ours, frames/s", r["b_ours_fps"], unit="frames/s", target=">= 185").checked()]


def gaze_scaling_rows(r: dict[str, Any]) -> list[Row]:
    """Per source: its native input (or the smallest the model's queries allow) over the 800 px upscale, and the
    largest batch over batch 1 at that input."""
    rows, native = [], {}
    for m in r["scaling"]:
        if m["resize"] == "native":
            native.setdefault(m["source"], {})[m["batch"]] = m
    for m in r["scaling"]:
        if m["resize"] != "native":
            src, (h, w), by_batch = m["source"], m["frame"], native[m["source"]]
            small, big = by_batch[m["batch"]], by_batch[max(by_batch)]
            at = "×".join(map(str, small["model_input"]))
            rows.append(Row.ratio("gaze-scaling", f"{src} {h}×{w}: at {at} / at the 800 px upscale "
                                  f"{'×'.join(map(str, m['model_input']))} (batch {m['batch']})",
                                  small["frames_per_s"], m["frames_per_s"], "frames/s"))
            rows.append(Row.ratio("gaze-scaling", f"{src} at {at}: batch {max(by_batch)} / batch {min(by_batch)}",
                                  big["frames_per_s"], by_batch[min(by_batch)]["frames_per_s"], "frames/s"))
    return rows


def pixel_rows(r: dict[str, Any]) -> list[Row]:
    fps, rows = r["fps"], []
    for key in sorted((k for k in fps if k.startswith("b")), key=lambda k: int(k[1:])):
        rows.append(Row.ratio("pixel", f"ours (batch {key[1:]}) / peer loop", fps[key], fps["a1"], "frames/s", ">= 5"))
        rows.append(Row.ratio("pixel", f"ours (batch {key[1:]}) / models alone", fps[key], fps[f"c{key[1:]}"],
                              "frames/s"))
    return rows


def pixel_memory_rows(r: dict[str, Any]) -> list[Row]:
    first, last = r["runs"][0], r["runs"][-1]
    key = "cuda_peak_mib" if "cuda_peak_mib" in first else "peak_rss_mib"
    return [Row.ratio("pixel-memory", f"SAM 2 track peak memory, {last['frames']} / {first['frames']} frames",
                      last[key], first[key], "MiB", "<= 1.05")]


def future_rows(r: dict[str, Any]) -> list[Row]:
    fps = r["frames_per_s"]
    rows = [Row.ratio("future", "ours / one image per call", fps["b_ours_pipeline"], fps["a_stock_one_image"],
                      "frames/s", ">= 4.5"),
            Row.ratio("future", "ours / tower alone", fps["b_ours_pipeline"], fps["c1_tower_alone_ours"], "frames/s",
                      ">= 0.8")]
    if "fraction_of_bf16_peak" in r:
        rows.append(Row("future", "ours, fraction of bf16 peak FLOPs", r["fraction_of_bf16_peak"]["b_ours_pipeline"]))
    return rows


def trainer_rows(recipe: str) -> Callable[[dict[str, Any]], list[Row]]:
    def rows(r: dict[str, Any]) -> list[Row]:
        stage = f"trainer-{recipe}"
        return [Row(stage, f"data wait / step time ({r['workers_per_process']} workers)", r["data_wait_fraction"],
                    target="< 0.05").checked(),
                Row(stage, "samples/s", r["samples_per_s"], unit="samples/s")]

    return rows


def la_rows(r: dict[str, Any]) -> list[Row]:
    return [Row("la", f"keyframes + kinematic labels, steps/s ({r['steps']} steps)", r["steps_per_s"],
                unit="steps/s"),
            Row("la", f"CPU-hours for {r['corpus_steps'] / 1e6:.0f} M steps (DROID)", r["corpus_cpu_hours"],
                unit="h")]


def reader_rows(r: dict[str, Any]) -> list[Row]:
    passes = {p["name"]: p for p in r["passes"]}
    rows = []
    for mode in ("lazy", "decoded"):
        ours, raw = passes[mode], passes[f"raw tf.data {mode}"]
        rows.append(Row.ratio("reader", f"RLDS reader / raw tf.data, {mode}", ours["frames"] / ours["seconds"],
                              raw["frames"] / raw["seconds"], "frames/s"))
    return rows


ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "gaze": gaze_rows, "gaze-scaling": gaze_scaling_rows, "pixel": pixel_rows, "pixel-memory": pixel_memory_rows,
    "future": future_rows, **{f"trainer-{r}": trainer_rows(r) for r in ("la", "gaze", "future", "pixel")},
    "la": la_rows, "reader": reader_rows,
}


# ---- running under the budget -------------------------------------------------------------------------------

def run_stage_child(stage: str, device: str, profile: str, slice_s: float, work: Path) -> dict[str, Any]:
    """One stage in a child process (its own session, so its children die with it), killed after `slice_s`."""
    result_file = work / f"{stage}.json"
    command = [sys.executable, "-m", "benchmarks.gpu_suite", "--stage", stage, "--device", device,
               "--profile", profile, "--result", str(result_file)]
    log = (work / f"{stage}.log").open("w")
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        code = child.wait(timeout=max(slice_s, 0.0))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        code = None
    finally:
        log.close()
    seconds = time.perf_counter() - start
    entry: dict[str, Any] = {"stage": stage, "slice_s": round(slice_s, 1), "seconds": round(seconds, 1)}
    if code is None:
        return {**entry, "status": "out of time"}
    if code != 0 or not result_file.exists():
        lines = [ln for ln in (work / f"{stage}.log").read_text().splitlines() if ln.strip()]
        return {**entry, "status": "failed", "error": lines[-1] if lines else f"exit code {code}"}
    return {**entry, "status": "ok", "result": json.loads(result_file.read_text())}


def run_suite(device: str, profile: str, budget: float, stages: list[str], work: Path) -> dict[str, Any]:
    """Every stage in order under `budget` seconds; rows from each finished stage's measured numbers."""
    start = time.perf_counter()
    entries, rows = [], []
    shares = sum(SHARE[s] for s in stages) / sum(SHARE.values())  # a subset of the stages shares the whole budget
    for stage in stages:
        left = budget - (time.perf_counter() - start)
        entry = run_stage_child(stage, device, profile, min(SHARE[stage] / shares * budget, left), work)
        if entry["status"] == "ok":
            rows.extend(asdict(row) for row in ROWS[stage](entry["result"]))
        entries.append(entry)
    return {"device": device, "profile": profile, "budget_s": budget, "seconds": round(time.perf_counter() - start, 1),
            "sizes": {s: stage_sizes(profile, s) for s in stages}, "stages": entries, "rows": rows}


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def to_markdown(report: dict[str, Any]) -> str:
    device = next((e["result"].get("device") for e in report["stages"] if e["status"] == "ok"
                   and isinstance(e["result"].get("device"), str)), report["device"])
    title = (f"Suite on {device}, profile `{report['profile']}`: {report['seconds']:.0f} s of a "
             f"{report['budget_s']:.0f} s budget. Targets are the issue's GPU targets.")
    lines = [title, "",
             "| stage | what | ratio / value | ours | reference | unit | target | pass |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for row in report["rows"]:
        passed = "" if row["passed"] is None else ("yes" if row["passed"] else "no")
        lines.append(f"| {row['stage']} | {row['what']} | {fmt(row['value'])} | {fmt(row['ours'])} | "
                     f"{fmt(row['reference'])} | {row['unit']} | {row['target']} | {passed} |")
    for entry in report["stages"]:
        if entry["status"] != "ok":
            detail = f": {entry['error']}" if entry.get("error") else ""
            lines.append(f"| {entry['stage']} | **{entry['status']}** after {entry['seconds']:.0f} s of its "
                         f"{entry['slice_s']:.0f} s slice{detail} | | | | | | no |")
    lines.append("")
    lines.append("| stage | slice (s) | took (s) | status |")
    lines.append("|---|---:|---:|---|")
    lines += [f"| {e['stage']} | {e['slice_s']:.0f} | {e['seconds']:.0f} | {e['status']} |" for e in report["stages"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", choices=sorted(SIZES), default=None, help="sizes (default: gpu on cuda, else cpu)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole suite (default: by profile)")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench-gpu")
    parser.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)  # child process: one stage
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    profile = args.profile or ("gpu" if args.device.startswith("cuda") else "cpu")
    if args.stage:
        result = STAGES[args.stage](args.device, stage_sizes(profile, args.stage))
        args.result.write_text(json.dumps(result, default=str))
        return result
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "stages"
    work.mkdir(exist_ok=True)
    report = run_suite(args.device, profile, args.budget or DEFAULT_BUDGET[profile], args.stages, work)
    table = to_markdown(report)
    (args.out / "suite.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "suite.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
