"""Compare two output folders file by file: what a refactor must leave byte-identical, and what may differ.

    python -m benchmarks.output_diff BEFORE/la/sample-droid AFTER/la/sample-droid

Every file present in either folder is compared byte for byte; `manifest.json` is
compared as JSON with the fields that change from run to run left out (time
stamps, wall times, code version), and each remaining difference is printed with
its JSON path. MP4 files that differ only in container bytes (libx264 is not
byte-deterministic from run to run) are decoded and counted as "same frames" when
every decoded frame is equal. Exit status 1 when anything else differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
VOLATILE = {"created", "updated", "code_version", "seconds"}  # differ on every run, by design


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def json_differences(a: Any, b: Any, path: str = "$") -> list[str]:
    """Human-readable differences between two JSON values, one line per differing path."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}"
            if key not in a:
                out.append(f"{where}: only after ({json.dumps(b[key])[:120]})")
            elif key not in b:
                out.append(f"{where}: only before ({json.dumps(a[key])[:120]})")
            else:
                out += json_differences(a[key], b[key], where)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:120]} → {json.dumps(b)[:120]}"]


def same_frames(a: Path, b: Path) -> bool:
    """Whether two videos decode to the same frames."""
    import av
    import numpy as np

    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        fa = [f.to_ndarray(format="rgb24") for f in ca.decode(video=0)]
        fb = [f.to_ndarray(format="rgb24") for f in cb.decode(video=0)]
    return len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb))


def compare(before: Path, after: Path) -> dict[str, list[str]]:
    """{"identical", "same_frames", "differ", "only_before", "only_after", "manifest"}: lists of paths or lines."""
    a, b = _files(before), _files(after)
    report: dict[str, list[str]] = {"identical": [], "same_frames": [], "differ": [], "only_before": sorted(a - b),
                                    "only_after": sorted(b - a), "manifest": []}
    for name in sorted(a & b):
        if name == MANIFEST:
            report["manifest"] = json_differences(_strip(json.loads((before / name).read_text())),
                                                  _strip(json.loads((after / name).read_text())))
        elif (before / name).read_bytes() == (after / name).read_bytes():
            report["identical"].append(name)
        elif name.endswith(".mp4") and same_frames(before / name, after / name):
            report["same_frames"].append(name)
        else:
            report["differ"].append(name)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    report = compare(args.before, args.after)
    groups: dict[str, int] = {}
    for name in report["identical"]:
        top = name.split("/", 1)[0] if "/" in name else name
        groups[top] = groups.get(top, 0) + 1
    print(f"byte-identical: {len(report['identical'])} files ({', '.join(f'{k}: {v}' for k, v in sorted(groups.items()))})")
    print(f"videos with other container bytes but the same decoded frames: {len(report['same_frames'])}")
    for key in ("differ", "only_before", "only_after"):
        print(f"{key}: {len(report[key])}")
        for name in report[key]:
            print(f"  {name}")
    print(f"manifest differences (time stamps, wall times and code version left out): {len(report['manifest'])}")
    for line in report["manifest"]:
        print(f"  {line}")
    return int(any(report[k] for k in ("differ", "only_before", "only_after", "manifest")))


if __name__ == "__main__":
    sys.exit(main())
