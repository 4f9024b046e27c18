import numpy as np
import pytest

from annotators.detection import Detections, DetectorConfig, StubDetector, make_detector


@pytest.mark.parametrize(
    "field, value, message",
    [("box_threshold", 1.5, "box_threshold"), ("text_threshold", -0.1, "text_threshold"), ("batch_size", 0, "batch_size")],
)
def test_config_rejects_values_out_of_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**{field: value})


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="stub.*transformers.*ultralytics"):
        make_detector("yolo-nas")


def test_stub_answers_per_image_and_defaults_to_no_box():
    box = Detections(np.array([[1, 2, 3, 4]], np.float32), [0.9], [0])
    stub = make_detector("stub", answers=lambda i, phrase: box if phrase == "cup." else Detections.empty())
    out = stub.detect([np.zeros((4, 4, 3), np.uint8)] * 3, ["cup.", "lid.", "cup."])
    assert [len(d) for d in out] == [1, 0, 1]
    assert [len(d) for d in StubDetector().detect([np.zeros((4, 4, 3), np.uint8)], ["x."])] == [0]


def test_ultralytics_backend_without_the_extra_names_the_install_command():
    pytest.importorskip("torch")
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"\.\[official\]"):
            make_detector("ultralytics", DetectorConfig(model="yolov8s.pt"))
    else:
        pytest.skip("ultralytics is installed; the missing-extra message cannot be shown")


class FakeYolo:
    """ultralytics.YOLO look-alike: two classes, fixed boxes."""

    class _Boxes:
        def __init__(self):
            import torch

            self.xyxy = torch.tensor([[0.0, 0, 5, 5], [1, 1, 8, 8]])
            self.conf = torch.tensor([0.9, 0.6])
            self.cls = torch.tensor([0.0, 1.0])

    def predict(self, images, **kwargs):
        from types import SimpleNamespace

        return [SimpleNamespace(boxes=self._Boxes(), names={0: "cup", 1: "block"}) for _ in images]


def test_ultralytics_backend_keeps_the_boxes_of_the_phrase_class():
    pytest.importorskip("torch")
    from annotators.detection.ultralytics_backend import UltralyticsDetector

    out = UltralyticsDetector(model=FakeYolo()).detect([np.zeros((8, 8, 3), np.uint8)] * 2, ["block.", "lid."])
    assert out[0].xyxy.tolist() == [[1, 1, 8, 8]] and len(out[1]) == 0


def test_centre_backend_answers_the_central_box_of_every_image():
    centre = make_detector("centre")
    out = centre.detect([np.zeros((40, 80, 3), np.uint8), np.zeros((10, 10, 3), np.uint8)], ["cup.", "lid."])
    np.testing.assert_allclose(out[0].xyxy, [[20, 10, 60, 30]])
    np.testing.assert_allclose(out[1].xyxy, [[2.5, 2.5, 7.5, 7.5]])
    assert [float(d.confidence[0]) for d in out] == [1.0, 1.0]
