"""Per-person charts against detectron2's own conversion (DensePoseChartResult).

detectron2 resampled the predictor outputs of five given person boxes (60 to 680 pixels,
fractional coordinates) to its integer boxes; test/data/detectron2_zoo holds the result (see
its README). The stand-in weights make noisy label maps, so any difference in resampling or
in the integer box shows. Our predictor runs the same boxes on the same image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_fixtures import d2_checkpoint, parity_image  # noqa: F401

from densepose_ros.inference.checkpoint import import_detectron2
from densepose_ros.inference.postprocess import full_frame_iuv, person_iuv_charts
from densepose_ros.inference.predictor import DensePosePredictor
from densepose_ros.modeling import build_model, get_config

ZOO_DIR = Path(__file__).resolve().parent / "data" / "detectron2_zoo"
CONFIGS = ("R_50_FPN_s1x", "R_50_FPN_s1x_legacy")
UV_TOLERANCE = 2 / 255


def detectron2_charts(config_name: str):
    data = np.load(ZOO_DIR / f"densepose_rcnn_{config_name}_chart_results.npz")
    count = len(data["boxes"])
    return data["boxes"], [(data[f"labels_{i}"], data[f"u_{i}"] / 65535.0,
                            data[f"v_{i}"] / 65535.0) for i in range(count)]


@pytest.fixture(scope="module", params=CONFIGS)
def compared(request, d2_checkpoint):  # noqa: F811
    name = request.param
    cfg = get_config(name)
    model = build_model(cfg)
    model.load_state_dict(import_detectron2(d2_checkpoint(name), name))
    boxes, reference = detectron2_charts(name)
    result = DensePosePredictor(model, cfg, resize=False).predict_on_boxes(parity_image(), boxes)
    return name, result, reference


def agreement(persons, reference) -> tuple[float, float, int]:
    """(fraction of pixels whose label equals detectron2's, largest U/V difference where
    the labels agree and are a body chart, number of pixels)."""
    same = total = 0
    worst = 0.0
    for person, (labels, u, v) in zip(persons, reference, strict=True):
        assert person.labels.shape == labels.shape, "integer box differs from detectron2's"
        equal = person.labels == labels
        same += int(equal.sum())
        total += labels.size
        body = equal & (labels > 0)
        worst = max(worst, float(np.abs(person.u - u)[body].max()),
                    float(np.abs(person.v - v)[body].max()))
    return same / total, worst, total


def test_exact_charts_agree_with_detectron2(compared):
    name, result, reference = compared
    fraction, worst_uv, pixels = agreement(person_iuv_charts(result, "exact"), reference)
    print(f"{name} exact: labels agree on {100 * fraction:.3f}% of {pixels} pixels, "
          f"U/V max difference {255 * worst_uv:.3f}/255")
    assert fraction >= 0.995
    assert worst_uv <= UV_TOLERANCE


def test_exact_full_frame_iuv_is_pasted_at_detectron2s_integer_box(compared):
    name, result, reference = compared
    height, width = result.image_size
    expected = np.zeros((height, width), np.uint8)
    covered = np.zeros((height, width), np.uint8)
    for box, (labels, _, _) in zip(result.boxes.numpy(), reference, strict=True):
        x, y = int(box[0]), int(box[1])  # detectron2: int() of the float32 corner
        h, w = labels.shape
        expected[y:y + h, x:x + w] = labels
        covered[y:y + h, x:x + w] += 1
    once = covered == 1
    iuv = full_frame_iuv(result, person_iuv_charts(result, "exact"))
    fraction = float((iuv[..., 0] == expected)[once].mean())
    print(f"{name} exact full frame: {100 * fraction:.3f}% of {int(once.sum())} pixels "
          "covered by one box")
    assert once.sum() > 400_000 and fraction >= 0.995


def test_fast_charts_report_their_agreement(compared):
    # fast decides on the predictor grid: it is not detectron2's output and says by how much
    name, result, reference = compared
    persons = person_iuv_charts(result, "fast")
    same = total = 0
    for person, (labels, _, _) in zip(persons, reference, strict=True):
        h = min(person.labels.shape[0], labels.shape[0])
        w = min(person.labels.shape[1], labels.shape[1])
        same += int((person.labels[:h, :w] == labels[:h, :w]).sum())
        total += h * w
    print(f"{name} fast: labels agree with detectron2 on {100 * same / total:.2f}% of pixels")
    assert 0.5 < same / total < 0.995  # a different method, visibly
