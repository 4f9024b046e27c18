"""The drill on outputs (issue 12, parts 3 and 4): a damaged output folder, and a disk that refuses writes.

One real la run on the embedded sample (module fixture) is copied per case and damaged: a truncated
manifest, valid JSON of the wrong shape, a deleted shard, flipped bytes in a shard. A re-run verifies
what it skips and rebuilds the rest, back to the rows of the undamaged output; the export and the
trainer refuse a damaged shard naming it. Full (ENOSPC) and read-only (EROFS) disks are injected
through fsspec during the finish, not through permissions (CI runs as root).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileOpener, LocalFileSystem
from typer.testing import CliRunner

from datasets_cards.manifest import (
    MANIFEST_BACKUP,
    Manifest,
    ManifestError,
    ShardIntegrityError,
)
from datasets_cards.storage import StorageError
from pipelines.cli import app
from pipelines.flows import annotate as flow_module
from pipelines.io.lease import LEASE_FILE

SOURCE, PIPELINE, LIMIT, PER_SHARD = "sample-droid", "la", 4, 2
OPTIONS = {"plots": 0, "review": False}  # no plots or review tasks: the drill is about the shards
CLI_ARGS = ["--pipeline", PIPELINE, "--limit", str(LIMIT), "--episodes-per-shard", str(PER_SHARD),
            "-o", "plots=0", "-o", "review=false", "--retries", "0"]


def _needs_sample() -> None:
    from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, GROUND_TRUTH_DIR

    if not (DEFAULT_DATA_DIR / "droid" / GROUND_TRUTH_DIR / "episodes.parquet").exists():
        pytest.skip("no generated sample: run `make sample-data`")
    pytest.importorskip("tensorflow_datasets", reason="reading the RLDS sample needs the `tfds` extra")


def run(out: Path, **kw):
    args = {"source": SOURCE, "pipeline": PIPELINE, "out": str(out), "limit": LIMIT, "episodes_per_shard": PER_SHARD,
            "options": OPTIONS, "retries": 0}
    return flow_module.annotate(**(args | kw))


def target_of(out: Path) -> Path:
    return out / PIPELINE / SOURCE


def rows(target: Path) -> list[str]:
    """Every row of the output its manifest lists, as sorted comparable strings."""
    manifest = Manifest.load(str(target))
    got = []
    for shard in manifest.current_shards:
        got += [json.dumps(r, sort_keys=True, default=str) for r in pq.read_table(target / shard.path).to_pylist()]
    return sorted(got)


def temp_files(target: Path) -> list[str]:
    return sorted(str(p.relative_to(target)) for p in target.rglob(".tmp-*"))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One undamaged output: (its OUT root, its rows)."""
    _needs_sample()
    out = tmp_path_factory.mktemp("base")
    manifest = run(out)
    assert manifest.complete and len(manifest.shards) == LIMIT // PER_SHARD and manifest.rows > LIMIT
    return out, rows(target_of(out))


@pytest.fixture
def copy(base, tmp_path):
    """A fresh copy of the undamaged output for one case: its OUT root."""
    out = tmp_path / "out"
    shutil.copytree(base[0], out)
    return out


def flip_bytes(path: Path, at: int) -> None:
    """Invert 16 bytes of `path` from offset `at`."""
    data = bytearray(path.read_bytes())
    for i in range(at, at + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def footer(path: Path) -> int:
    """Offset of a Parquet file's footer (its thrift FileMetaData)."""
    data = path.read_bytes()
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def assert_rebuilt(out: Path, base) -> None:
    manifest = run(out)
    target = target_of(out)
    assert manifest.complete and Manifest.load(str(target)).complete
    assert rows(target) == base[1]
    assert not temp_files(target) and not (target / LEASE_FILE).exists()


# -- a damaged manifest -----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "wrong shape: a list", "wrong shape: fields"])
def test_a_damaged_manifest_is_named_and_rebuilt_from_the_shards_that_verify(copy, base, damage):
    path = target_of(copy) / "manifest.json"
    text = path.read_text()
    path.write_text({"truncated": text[: len(text) // 2], "wrong shape: a list": "[1, 2, 3]",
                     "wrong shape: fields": json.dumps({"shards": "none", "complete": "yes"})}[damage])
    with pytest.raises(ManifestError, match=str(path)):  # what the trainer, export and review see
        Manifest.load(str(target_of(copy)))
    shard = target_of(copy) / "shards" / "shard-00000.parquet"
    before = shard.stat().st_mtime_ns
    assert_rebuilt(copy, base)
    assert shard.stat().st_mtime_ns == before  # kept: it verified against the backup's record


def test_a_damaged_manifest_without_its_backup_redoes_every_unit(copy, base):
    target = target_of(copy)
    (target / "manifest.json").write_text("{")
    (target / MANIFEST_BACKUP).write_text("")
    assert_rebuilt(copy, base)


def test_overwrite_starts_over_on_a_damaged_manifest(copy, base):
    target = target_of(copy)
    (target / "manifest.json").write_text("[]")
    (target / "stray.txt").write_text("left by hand")
    manifest = run(copy, overwrite=True)
    assert manifest.complete and rows(target) == base[1] and not (target / "stray.txt").exists()


def test_the_command_reports_a_damaged_manifest_with_its_path_and_finishes(copy, base):
    path = target_of(copy) / "manifest.json"
    path.write_text(path.read_text()[:100])
    result = CliRunner().invoke(app, ["annotate", SOURCE, "--out", str(copy), *CLI_ARGS])
    assert result.exit_code == 0, result.output
    log = (copy / "logs" / f"{PIPELINE}-{SOURCE}.log").read_text()
    assert f"{path} is damaged" in log and "rebuilt from its backup" in log
    assert rows(target_of(copy)) == base[1]


# -- damaged shards ---------------------------------------------------------------------------------------


def test_a_deleted_shard_is_rebuilt(copy, base):
    (target_of(copy) / "shards" / "shard-00001.parquet").unlink()
    assert_rebuilt(copy, base)


@pytest.mark.parametrize("where", ["pages", "footer"])
def test_a_shard_with_flipped_bytes_is_rebuilt(copy, base, where):
    shard = target_of(copy) / "shards" / "shard-00000.parquet"
    flip_bytes(shard, 64 if where == "pages" else footer(shard))
    assert_rebuilt(copy, base)


def test_a_lost_quarantine_part_redoes_its_unit(copy, base):
    (target_of(copy) / "_quarantine" / "unit-00001.parquet").unlink()
    assert_rebuilt(copy, base)


def test_the_export_refuses_a_damaged_shard_naming_it(copy, tmp_path):
    from pipelines.formats.rlds.export import export_rlds

    shard = target_of(copy) / "shards" / "shard-00001.parquet"
    flip_bytes(shard, 64)
    with pytest.raises(ShardIntegrityError, match=str(shard)):
        export_rlds(str(target_of(copy)), str(tmp_path / "rlds"))
    assert not (tmp_path / "rlds").exists()  # nothing copied out
    result = CliRunner().invoke(app, ["export", str(target_of(copy)), "--dest", str(tmp_path / "rlds")])
    assert result.exit_code == 1 and str(shard) in result.output and "Traceback" not in result.output


def test_the_trainer_refuses_a_damaged_shard_naming_it(copy):
    from trainer.data import ShardDataset

    target = target_of(copy)
    shard = target / "shards" / "shard-00000.parquet"
    flip_bytes(shard, footer(shard))  # pyarrow's own error ("couldn't deserialize thrift") names no file
    with pytest.raises(ShardIntegrityError, match=f"{shard}.*sha256"):
        ShardDataset(str(target), shuffle=False)
    with pytest.raises(ShardIntegrityError, match=f"{shard}.*cannot be read as Parquet"):
        ShardDataset(str(target), shuffle=False, verify_checksums=False)
    from trainer.__main__ import main as train_main

    with pytest.raises(SystemExit) as stopped:  # the command: one line naming the shard, no traceback
        train_main(["--recipe", "la", "--data", str(target), "--steps", "1", "--out", str(copy / "ckpt")])
    assert str(stopped.value).startswith("error: ") and str(shard) in str(stopped.value)
    (target / "manifest.json").write_text("{")
    with pytest.raises(ManifestError, match=str(target / "manifest.json")):
        ShardDataset(str(target))


def test_a_shard_damaged_after_the_check_names_itself_when_read(copy):
    from trainer.data import ShardDataset

    target = target_of(copy)
    dataset = ShardDataset(str(target), shuffle=False)
    flip_bytes(target / "shards" / "shard-00000.parquet", 4)  # the first page, changed under a live loader
    with pytest.raises(ShardIntegrityError, match="shard-00000.parquet row group 0"):
        list(dataset)


# -- a disk that refuses writes -----------------------------------------------------------------------------


class DiskFault:
    """Writes under `root` fail with `code` once armed: ENOSPC half-way through a write (a real full disk
    leaves a partial file), EROFS on every open for writing, rename, mkdir and delete."""

    def __init__(self, monkeypatch, root: Path, code: int):
        self.root, self.code, self.armed = str(root), code, False
        fault = self

        def error(path) -> OSError:
            return OSError(fault.code, os.strerror(fault.code), str(path))

        def hits(path) -> bool:
            return fault.armed and str(path).startswith(fault.root)

        real_write, real_open = LocalFileOpener.write, LocalFileSystem._open

        def write(self, data, *args, **kwargs):
            if hits(self.path):
                real_write(self, data[: len(data) // 2])
                raise error(self.path)
            return real_write(self, data, *args, **kwargs)

        def _open(self, path, mode="rb", *args, **kwargs):
            if code == errno.EROFS and hits(path) and any(m in mode for m in "wax+"):
                raise error(path)
            return real_open(self, path, mode, *args, **kwargs)

        monkeypatch.setattr(LocalFileOpener, "write", write)
        monkeypatch.setattr(LocalFileSystem, "_open", _open)
        if code == errno.EROFS:
            for name in ("mv", "rm", "rm_file", "makedirs", "mkdir", "touch"):
                real = getattr(LocalFileSystem, name)

                def refused(self, path, *args, _real=real, **kwargs):
                    if hits(path):
                        raise error(path)
                    return _real(self, path, *args, **kwargs)

                monkeypatch.setattr(LocalFileSystem, name, refused)

    def arm_at_the_finish(self, monkeypatch) -> None:
        """Arm the fault when the flow starts its finish (merging the quarantine parts)."""
        merge = flow_module.merge_quarantine

        def armed_merge(*args, **kwargs):
            self.armed = True
            return merge(*args, **kwargs)

        monkeypatch.setattr(flow_module, "merge_quarantine", armed_merge)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["ENOSPC", "EROFS"])
def test_a_disk_that_refuses_writes_during_the_finish_is_one_line_and_a_rerun_finishes(copy, base, code,
                                                                                       monkeypatch):
    target = target_of(copy)
    (target / "shards" / "shard-00001.parquet").unlink()  # the run has a unit to redo, then the finish
    (target / "quarantine.parquet").unlink()
    (target / "card.md").unlink()
    fault = DiskFault(monkeypatch, target, code)
    with monkeypatch.context() as scoped:
        fault.arm_at_the_finish(scoped)
        result = CliRunner().invoke(app, ["annotate", SOURCE, "--out", str(copy), *CLI_ARGS])
        fault.armed = False
    first = result.output.strip().splitlines()[0]
    assert result.exit_code == 1, result.output
    assert first.startswith("error: cannot write") and str(target / "quarantine.parquet") in first
    assert ("ENOSPC" if code == errno.ENOSPC else "EROFS") in first and "Traceback" not in result.output
    assert not (target / "quarantine.parquet").exists() and not (target / "card.md").exists()  # nothing half-written
    assert not temp_files(target)
    assert not Manifest.load(str(target)).complete
    assert_rebuilt(copy, base)  # the fault gone (space freed, remounted), the same command finishes


def test_a_write_error_in_the_flow_is_a_storage_error_naming_the_file(copy, monkeypatch):
    fault = DiskFault(monkeypatch, target_of(copy), errno.ENOSPC)
    fault.armed = True
    with pytest.raises(StorageError, match=f"cannot write {target_of(copy)}.*no space left"):
        run(copy)


def test_out_that_is_a_file_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.write_text("not a folder")
    result = CliRunner().invoke(app, ["annotate", SOURCE, "--out", str(out), *CLI_ARGS])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = f"error: --out {out} is a file, not a folder: pass a folder (it is created if missing)"
    assert result.output.strip().splitlines() == [line]
    with pytest.raises(StorageError, match="is a file, not a folder"):  # a deployment, without the command
        run(out)
    assert out.read_text() == "not a folder"


# -- the other commands on a damaged or unfinished output ---------------------------------------------------


def test_inspect_reports_a_damaged_manifest_in_one_line(copy):
    path = target_of(copy) / "manifest.json"
    path.write_text(path.read_text()[:100])
    result = CliRunner().invoke(app, ["inspect", str(target_of(copy))])
    assert result.exit_code == 1 and str(path) in result.output and "Traceback" not in result.output


def test_export_of_an_unfinished_output_is_one_line(copy, tmp_path):
    manifest = Manifest.load(str(target_of(copy)))
    manifest.complete = False
    manifest.save(str(target_of(copy)))
    result = CliRunner().invoke(app, ["export", str(target_of(copy)), "--dest", str(tmp_path / "rlds")])
    assert result.exit_code == 1 and "is not finished" in result.output and "Traceback" not in result.output


def test_a_cut_short_episode_id_cache_is_scanned_again(copy, base):
    cache = target_of(copy) / "_staging" / "episode_ids.json"
    cache.write_text(cache.read_text()[:20])
    assert_rebuilt(copy, base)
    assert json.loads(cache.read_text())["ids"]  # rewritten whole


@pytest.mark.parametrize("path", ["../../outside.parquet", "/etc/outside.parquet", "shards/../../x.parquet",
                                  "s3://bucket/x.parquet", "shards/shard-00000.txt"])
def test_a_manifest_pointing_a_shard_outside_its_folder_is_damaged(copy, base, path):
    """A crafted manifest must not steer the re-run's clean-up of damaged shards outside the output folder."""
    target = target_of(copy)
    data = json.loads((target / "manifest.json").read_text())
    data["shards"][0]["path"] = path
    (target / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="manifest.json"):
        Manifest.load(str(target))
