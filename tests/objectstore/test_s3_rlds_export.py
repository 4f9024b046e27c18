"""`pipelines export --dest s3://... --format rlds`: staged locally, uploaded through fsspec; it loads like a local export."""

from __future__ import annotations

import os
import subprocess
import sys

import fsspec
import numpy as np
import pytest

from pipelines.formats.rlds.export import export_rlds
from tests.trainer.factories import make_la_folder

tfds = pytest.importorskip("tensorflow_datasets")


def _episodes(path: str) -> list[dict]:
    return list(tfds.as_numpy(tfds.builder_from_directory(path).as_dataset(split="train")))


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif hasattr(a, "as_numpy_iterator") or type(a).__name__ == "_IterableDataset":
        _same(list(a), list(b))
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def test_rlds_export_to_s3_loads_like_a_local_export(tmp_path, s3_prefix, s3_env):
    out = tmp_path / "out" / "la" / "droid"
    make_la_folder(out, episodes=4, segments=2)
    local = export_rlds(str(out), str(tmp_path / "local"))

    done = subprocess.run([sys.executable, "-m", "pipelines", "export", str(out), "--dest", f"{s3_prefix}/rlds",
                           "--format", "rlds"], check=False, env={**os.environ, **s3_env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    remote = f"{s3_prefix}/rlds/{local.relative_to(tmp_path / 'local').as_posix()}"
    assert remote in " ".join((done.stdout + done.stderr).split())  # the CLI names where it went
    assert not (tmp_path / "s3:").exists() and not os.path.exists("s3:")  # no local folder named after the URL

    fs, path = fsspec.core.url_to_fs(remote)
    fs.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path)) == sorted(p.name for p in local.iterdir())
    fs.get(path, str(tmp_path / "back"), recursive=True)
    got, expected = _episodes(str(tmp_path / "back")), _episodes(str(local))
    assert len(got) == len(expected) == 4
    for g, e in zip(got, expected, strict=True):
        _same({**g, "steps": list(g["steps"])}, {**e, "steps": list(e["steps"])})
