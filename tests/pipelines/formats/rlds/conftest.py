"""Session-wide RLDS datasets in the published DROID, Bridge and Fractal schemas (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorflow_datasets", reason="RLDS needs the tfds extra")

from tests.pipelines.formats.rlds_fixtures import make_rlds_fixture  # noqa: E402

SCHEMAS = ("droid", "bridge", "fractal")
N_EPISODES = 3
N_STEPS = 6
# Faulty datasets: episode index → injected defect; episodes 0 and 6 stay clean.
FAULTS = {1: "nan_state", 2: "empty_instruction", 3: "corrupt_first_frame", 4: "corrupt_late_frame", 5: "zero_steps"}


@pytest.fixture(scope="session")
def clean_rlds(tmp_path_factory) -> dict[str, Path]:
    """schema → version folder of a clean dataset (N_EPISODES × N_STEPS)."""
    root = tmp_path_factory.mktemp("rlds-clean")
    return {s: make_rlds_fixture(root, s, N_EPISODES, N_STEPS) for s in SCHEMAS}


@pytest.fixture(scope="session")
def faulty_rlds(tmp_path_factory) -> dict[str, Path]:
    """schema → version folder of a dataset holding FAULTS between clean episodes."""
    root = tmp_path_factory.mktemp("rlds-faulty")
    return {s: make_rlds_fixture(root, s, len(FAULTS) + 2, N_STEPS, faults=FAULTS) for s in SCHEMAS}
