"""Default work-unit size: about a GPU-minute of model frames per unit, from the cards, never from timings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from datasets_cards import load_source_card
from datasets_cards.cards import load_output_card
from datasets_cards.manifest import Manifest
from pipelines.options import effective_params
from pipelines.units import FALLBACK_EPISODES_PER_UNIT, MAX_EPISODES_PER_UNIT, default_episodes_per_unit


def unit_size(pipeline: str, source: str, **options) -> int:
    card = load_source_card(source)
    return default_episodes_per_unit(load_output_card(pipeline), card, effective_params(pipeline, card, options))


def test_gaze_units_hold_a_gpu_minute_of_frames_over_every_exterior_camera():
    droid, gaze = load_source_card("droid"), load_output_card("gaze")
    exterior = len(droid.cameras_with_view("exterior"))
    assert exterior == 2
    assert unit_size("gaze", "droid") == round(gaze.unit_frames / (droid.episode_steps * exterior))
    # one camera annotated: each episode costs half the frames, so a unit holds twice the episodes
    assert unit_size("gaze", "droid", cameras=["exterior_1_left"]) == round(gaze.unit_frames / droid.episode_steps)


def test_short_episodes_make_units_of_more_episodes():
    assert unit_size("gaze", "bridge") > unit_size("gaze", "libero") > unit_size("gaze", "droid")


def test_future_views_and_stride_change_the_frames_an_episode_costs():
    plain = unit_size("future", "droid")
    assert unit_size("future", "droid", views=1) == round(plain / 2)
    assert unit_size("future", "droid", stride=4) == pytest.approx(4 * plain, abs=2)


def test_a_card_without_episode_length_gets_the_fallback_and_the_largest_unit_is_capped():
    assert load_source_card("so101").episode_steps is None
    assert unit_size("la", "so101") == FALLBACK_EPISODES_PER_UNIT
    pixel, bridge = load_output_card("pixel"), load_source_card("bridge")
    short = bridge.model_copy(update={"episode_steps": 2})  # 2,700 uncapped
    assert round(pixel.unit_frames / short.episode_steps) > MAX_EPISODES_PER_UNIT
    assert default_episodes_per_unit(pixel, short, effective_params("pixel", short, {})) == MAX_EPISODES_PER_UNIT


def test_annotate_without_a_unit_size_uses_the_cards_and_records_it(prefect_api, tmp_path):
    command = [sys.executable, "-m", "pipelines", "annotate", "sample-droid", "--pipeline", "la", "--out",
               str(tmp_path), "--limit", "3", "-o", "review=false", "-o", "plots=0"]
    done = subprocess.run(command, capture_output=True, text=True, env=prefect_api, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = Manifest.load(str(tmp_path / "la" / "sample-droid"))
    expected = unit_size("la", "sample-droid")
    assert expected > 3  # the whole limit fits one unit
    assert manifest.config["episodes_per_shard"] == expected
    assert [s.unit for s in manifest.shards] == ["0:3"]
