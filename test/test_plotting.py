"""The OpenCV line charts (loss curve, AP curve): lines land where their values say."""

from __future__ import annotations

import cv2
import numpy as np

from densepose_ros.training.plotting import Series, line_chart

RED = (0, 0, 220)


def _rows_with(image: np.ndarray, color) -> np.ndarray:
    """Rows holding pixels within 60 of `color` per channel (lines are anti-aliased)."""
    near = np.all(np.abs(image.astype(int) - np.array(color)) <= 60, axis=2)
    return np.unique(np.nonzero(near)[0])


def test_a_constant_line_sits_at_its_value_on_a_fixed_axis(tmp_path):
    path = tmp_path / "chart.png"
    line_chart([Series("AP", RED, [(0, 75.0), (100, 75.0)])], path, "t",
               y_range=(0.0, 100.0), width=400, height=300)
    image = cv2.imread(str(path))
    # plot area rows 40..250 (top 40, bottom margin 50): 75 of 0..100 is a quarter down
    rows = _rows_with(image[:, 70:260], RED)
    assert len(rows) and abs(np.median(rows) - (40 + 0.25 * 210)) <= 1.5


def test_log_scale_skips_non_positive_values_and_draws_the_rest(tmp_path):
    path = tmp_path / "loss.png"
    line_chart([Series("loss", RED, [(1, 10.0), (2, 0.0), (3, 1.0), (4, 0.1)])], path,
               "loss", log_y=True, width=400, height=300)
    image = cv2.imread(str(path))
    rows = _rows_with(image[:, 70:260], RED)
    # 10 at the top of the plot area, 0.1 at its bottom: the line spans it
    assert rows.min() <= 45 and rows.max() >= 245
