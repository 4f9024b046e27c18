
import pytest

from tests.trainer.factories import make_gaze_folder, make_la_folder
from trainer.models import ModelConfig
from trainer.train import TrainConfig, get_lr, train

SMALL = {"dim": 32, "layers": 1, "heads": 2, "horizon": 4, "image_size": 32, "patch": 8, "crop_size": 8, "crop_patch": 4, "flow_steps": 2}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    la, gaze = tmp_path_factory.mktemp("la"), tmp_path_factory.mktemp("gaze")
    make_la_folder(la, episodes=20)
    make_gaze_folder(gaze, episodes=8)
    return {"la": la, "gaze": gaze}


def _cfg(recipe, data, out, **kw):
    base = {"recipe": recipe, "data": str(data), "out": str(out), "steps": 40, "batch_size": 8, "lr": 3e-3, "warmup": 2,
                "num_workers": 0, "log_interval": 0, "ckpt_interval": 1000, "buffer_size": 8, "holdout_fraction": 0.25,
                "model": ModelConfig(**SMALL)}
    return TrainConfig(**{**base, **kw})


def test_lr_warms_up_then_decays_to_min():
    cfg = TrainConfig(data="x", steps=100, warmup=10, lr=1.0, min_lr=0.1)
    assert get_lr(0, cfg) < get_lr(9, cfg) <= 1.0
    assert get_lr(10, cfg) == pytest.approx(1.0) and get_lr(100, cfg) == pytest.approx(0.1)


@pytest.mark.parametrize("recipe", ["la", "gaze"])
def test_recipe_reduces_loss(recipe, folders, tmp_path):
    losses = train(_cfg(recipe, folders[recipe], tmp_path))["losses"]
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8


def test_la_eval_reports_paired_and_conflicting_metrics(folders, tmp_path):
    ev = train(_cfg("la", folders["la"], tmp_path, steps=5))["eval"]
    assert {"paired/DAR", "paired/DCS", "conflicting/SR", "conflicting/SS"} <= set(ev)


@pytest.mark.parametrize(("recipe", "workers"), [("la", 0), ("gaze", 2)])
def test_resume_reproduces_next_losses_exactly(recipe, workers, folders, tmp_path):
    full = train(_cfg(recipe, folders[recipe], tmp_path / "full", steps=10, num_workers=workers))["losses"]
    train(_cfg(recipe, folders[recipe], tmp_path / "part", steps=6, lr_decay_steps=10, num_workers=workers))
    resumed = train(_cfg(recipe, folders[recipe], tmp_path / "part", steps=10, lr_decay_steps=10, num_workers=workers))["losses"]
    assert resumed == full[6:]
