"""Weights on disk: messages that name the option to pass, and the identity a manifest records."""

from __future__ import annotations

import pytest

from annotators import weights
from annotators.weights import (
    MissingWeightsError,
    Weights,
    identify_weights,
    is_hub_id,
    require_weights,
    resolve_weights,
    weights_sha256,
)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))


def saved_model(folder, weights_bytes: bytes = b"\x00" * 64):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "tiny"}')
    (folder / "model.safetensors").write_bytes(weights_bytes)
    (folder / "README.md").write_text("not a weight file")
    return folder


@pytest.mark.parametrize("model, hub", [
    ("IDEA-Research/grounding-dino-tiny", True), ("facebook/sam2.1-hiera-tiny", True), ("gpt2", True),
    ("/models/grounding-dino", False), ("./weights", False), ("~/weights", False), ("a/b/c", False),
])
def test_hub_ids_are_told_from_paths(model, hub):
    assert is_hub_id(model) == hub


def test_a_missing_hub_id_names_the_flag_and_the_download(empty_cache):
    with pytest.raises(MissingWeightsError) as error:
        resolve_weights("IDEA-Research/grounding-dino-tiny", "Grounding DINO")
    message = str(error.value)
    assert "huggingface-cli download IDEA-Research/grounding-dino-tiny" in message
    assert "--option model=PATH" in message and "-o model=PATH" in message


def test_a_missing_local_folder_is_not_told_to_download_itself(tmp_path, empty_cache):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(MissingWeightsError) as error:
        resolve_weights(str(missing), "Grounding DINO")
    message = str(error.value)
    assert f"the folder {str(missing)!r} does not exist" in message and "--option model=PATH" in message
    assert "download" not in message


def test_a_folder_without_a_saved_model_says_so_and_names_the_option(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"holds no config\.json.*--option sam_model=PATH"):
        resolve_weights(str(tmp_path), "SAM 2", option="sam_model")


def test_every_missing_checkpoint_is_named_at_once_with_its_own_option(tmp_path, empty_cache):
    with pytest.raises(MissingWeightsError) as error:
        require_weights([Weights("Grounding DINO", "IDEA-Research/grounding-dino-tiny", "detector_model"),
                         Weights("SAM 2", str(tmp_path / "sam"), "sam_model")])
    message = str(error.value)
    assert "-o detector_model=PATH" in message and "-o sam_model=PATH" in message
    assert message.count("huggingface-cli download") == 1  # the hub id only


def test_the_identity_follows_the_weights_bytes_not_other_files(tmp_path):
    folder = saved_model(tmp_path / "m")
    first = identify_weights(Weights("tiny", str(folder), device="cpu"))
    assert first.folder == str(folder.resolve()) and first.revision is None
    assert (first.device, first.dtype) == ("cpu", "float32") and first.sha256 == weights_sha256(folder)
    (folder / "README.md").write_text("edited")
    assert weights_sha256(folder) == first.sha256
    (folder / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 63)
    assert weights_sha256(folder) != first.sha256
    assert weights_sha256(saved_model(tmp_path / "copy", b"\x01" + b"\x00" * 63)) == weights_sha256(folder)


def test_a_large_file_is_hashed_by_its_size_and_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "HASH_WHOLE", 32)
    monkeypatch.setattr(weights, "HASH_EDGE", 8)
    folder = saved_model(tmp_path / "m", bytes(range(64)))
    before = weights_sha256(folder)
    middle = bytearray(range(64))
    middle[30] = 255
    (folder / "model.safetensors").write_bytes(bytes(middle))
    assert weights_sha256(folder) == before  # documented: the middle of a large file is not read
    end = bytearray(range(64))
    end[-1] = 0
    (folder / "model.safetensors").write_bytes(bytes(end))
    assert weights_sha256(folder) != before


def test_a_hugging_face_snapshot_records_its_revision(tmp_path):
    folder = saved_model(tmp_path / "models--org--name" / "snapshots" / "0123abcd")
    record = identify_weights(Weights("tiny", str(folder), device="cpu"))
    assert record.revision == "0123abcd"
