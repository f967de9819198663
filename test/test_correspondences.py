"""Correspondence sampling on the image grid and back-projection with depth."""

import numpy as np
import pytest

from densepose_ros.inference.correspondences import (
    CameraIntrinsics,
    backproject,
    sample_correspondences,
)


def test_points_lie_on_the_global_grid_and_on_the_body():
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 10:25] = 7
    u = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1))
    v = np.tile(np.linspace(0, 1, 20, dtype=np.float32)[:, None], (1, 30))
    x0, y0, stride = 13, 4, 4
    points = sample_correspondences(labels, u, v, x0, y0, stride)
    assert len(points.x) > 0
    assert np.all(points.x % stride == stride // 2)
    assert np.all(points.y % stride == stride // 2)
    rows, cols = points.y.astype(int) - y0, points.x.astype(int) - x0
    assert np.all(labels[rows, cols] == points.part)
    np.testing.assert_array_equal(points.u, u[rows, cols])
    np.testing.assert_array_equal(points.v, v[rows, cols])
    # every foreground grid pixel is sampled exactly once
    ys, xs = np.nonzero(labels)
    on_grid = ((xs + x0) % stride == 2) & ((ys + y0) % stride == 2)
    assert on_grid.sum() == len(points.x)


def test_backprojection_matches_the_pinhole_model():
    # camera_info of the colour camera at 640x480; depth aligned at half resolution
    intr = CameraIntrinsics.from_k([500, 0, 320, 0, 400, 240, 0, 0, 1], 640, 480)
    depth = np.full((240, 320), 2.0, np.float32)
    depth[0, 0] = np.nan
    depth[25, 50] = 3.0  # under colour pixels (100..101, 50..51)
    x = np.array([320, 0, 100, 101], np.uint16)
    y = np.array([240, 0, 50, 51], np.uint16)
    xyz = backproject(x, y, depth, intr, (480, 640))
    np.testing.assert_allclose(xyz[0], [0.0, 0.0, 2.0], atol=1e-6)
    assert np.isnan(xyz[1]).any()
    np.testing.assert_allclose(xyz[2], [(100 - 320) * 3 / 500, (50 - 240) * 3 / 400, 3.0])
    np.testing.assert_allclose(xyz[3, 2], 3.0)


def test_intrinsics_of_another_resolution_are_rescaled():
    # same camera described at 1280x960: K doubles; results must not change
    small = CameraIntrinsics.from_k([500, 0, 320, 0, 400, 240, 0, 0, 1], 640, 480)
    large = CameraIntrinsics.from_k([1000, 0, 640.5, 0, 800, 480.5, 0, 0, 1], 1280, 960)
    depth = np.linspace(1, 4, 480 * 640, dtype=np.float32).reshape(480, 640)
    x = np.array([10, 300, 600], np.uint16)
    y = np.array([5, 200, 470], np.uint16)
    np.testing.assert_allclose(
        backproject(x, y, depth, small, (480, 640)), backproject(x, y, depth, large, (480, 640)),
        rtol=1e-5,
    )


@pytest.mark.parametrize(("k", "width", "height", "what"), [
    ([500, 0, 320, 0, 400, 240, 0, 0, 1], 0, 480, "image size"),
    ([500, 0, 320, 0, 400, 240, 0, 0, 1], 640, 0, "image size"),
    ([0, 0, 320, 0, 400, 240, 0, 0, 1], 640, 480, "intrinsics"),
    ([500, 0, 320, 0, 0, 240, 0, 0, 1], 640, 480, "intrinsics"),
    ([-500, 0, 320, 0, 400, 240, 0, 0, 1], 640, 480, "intrinsics"),
    ([float("nan"), 0, 320, 0, 400, 240, 0, 0, 1], 640, 480, "intrinsics"),
    ([500, 0, float("inf"), 0, 400, 240, 0, 0, 1], 640, 480, "intrinsics"),
    ([0] * 9, 0, 0, "image size"),  # what an unconfigured driver publishes
])
def test_unusable_camera_info_is_refused_with_the_reason(k, width, height, what):
    with pytest.raises(ValueError, match=f"no valid {what}"):
        CameraIntrinsics.from_k(k, width, height)
