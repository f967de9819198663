"""Horizontal flip: image, boxes, keypoints, DensePose points, charts, U/V and part masks."""

from __future__ import annotations

import numpy as np
import pytest

from densepose_ros.data.symmetry import (
    CHART_MIRROR,
    AnnySymmetry,
    LookupTableSymmetry,
    load_symmetry,
)
from densepose_ros.data.transforms import (
    AugmentationConfig,
    DenseTarget,
    Sample,
    TargetInstance,
    horizontal_flip,
    photometric_jitter,
)

WIDTH, HEIGHT = 200, 150


def _u_reversing_tables() -> LookupTableSymmetry:
    """Tables that send (U, V) to (1 - U, V) on every chart (with the files' quantisation)."""
    grid = np.arange(256) / 255.0
    u_tables = np.broadcast_to(1.0 - grid[None, None, :], (24, 256, 256)).copy()
    v_tables = np.broadcast_to(grid[None, :, None], (24, 256, 256)).copy()
    return LookupTableSymmetry(u_tables, v_tables)


def _sample(part=(3, 1, 23), u=(0.2, 0.5, 0.9), v=(0.4, 0.6, 0.1)) -> Sample:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[30, 15] = (1, 2, 3)
    segm = np.zeros((256, 256), np.uint8)
    segm[:, :100] = 2  # right hand on the left of the box
    segm[:, 200:] = 1  # torso on the right
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[1] = (20, 30, 2)  # left eye
    keypoints[2] = (40, 30, 1)  # right eye
    dense = DenseTarget(x=np.array([50.0, 128.0, 255.0], np.float32),
                        y=np.array([10.0, 20.0, 30.0], np.float32),
                        part=np.array(part, np.int64), u=np.array(u, np.float32),
                        v=np.array(v, np.float32), segm=segm)
    box = np.array([10.0, 20.0, 60.0, 120.0])
    return Sample(image, [TargetInstance(box=box, dense=dense, keypoints=keypoints)])


def test_chart_swap_table():
    # Left/right pairs swap; the torso charts stay; applying it twice is the identity.
    assert CHART_MIRROR[[0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 23, 24]].tolist() == [
        0, 1, 2, 4, 3, 6, 5, 8, 7, 16, 15, 24, 23]
    assert (CHART_MIRROR[CHART_MIRROR] == np.arange(25)).all()


def test_flip_with_lookup_tables():
    sample = _sample()
    flipped = horizontal_flip(sample, _u_reversing_tables())
    assert tuple(flipped.image[30, WIDTH - 1 - 15]) == (1, 2, 3)
    inst = flipped.instances[0]
    np.testing.assert_allclose(inst.box, [140, 20, 190, 120])
    dense = inst.dense
    np.testing.assert_allclose(dense.x, [206, 128, 1])
    np.testing.assert_allclose(dense.y, sample.instances[0].dense.y)
    assert dense.part.tolist() == [4, 1, 24]  # right hand -> left hand, head side swaps
    # U = 0.2 sits in table column int(0.2 * 255) = 51, whose value is 1 - 51/255.
    np.testing.assert_allclose(dense.u, [1 - 51 / 255, 1 - 127 / 255, 1 - 229 / 255],
                               atol=1e-6)
    np.testing.assert_allclose(dense.v, [102 / 255, 153 / 255, 25 / 255], atol=1e-6)
    # Part masks flip inside the box; right hand (2) becomes left hand (3).
    assert (dense.segm[:, 156:] == 3).all() and (dense.segm[:, :56] == 1).all()
    assert (dense.segm[:, 56:156] == 0).all()
    # Keypoints: the left eye of the flipped image is the former right eye, mirrored.
    np.testing.assert_allclose(inst.keypoints[1], [WIDTH - 40, 30, 1])
    np.testing.assert_allclose(inst.keypoints[2], [WIDTH - 20, 30, 2])


def test_flipped_points_land_on_mirrored_pixels():
    sample = _sample()
    flipped = horizontal_flip(sample, _u_reversing_tables())

    def image_x(inst):
        x1, _, x2, _ = inst.box
        return x1 + inst.dense.x / 256.0 * (x2 - x1)

    np.testing.assert_allclose(image_x(flipped.instances[0]),
                               WIDTH - image_x(sample.instances[0]), atol=1e-4)


def test_anny_flip_twice_is_identity():
    pytest.importorskip("densepose_ros.synth.charts")
    rng = np.random.default_rng(0)
    part = rng.integers(1, 25, 50)
    sample = _sample(part=part[:3], u=rng.random(3), v=rng.random(3))
    symmetry = load_symmetry("anny")
    assert isinstance(symmetry, AnnySymmetry)
    twice = horizontal_flip(horizontal_flip(sample, symmetry), symmetry)
    a, b = sample.instances[0], twice.instances[0]
    np.testing.assert_allclose(b.box, a.box)
    np.testing.assert_allclose(b.dense.x, a.dense.x)
    assert b.dense.part.tolist() == a.dense.part.tolist()
    np.testing.assert_allclose(b.dense.u, a.dense.u, atol=1e-6)
    np.testing.assert_allclose(b.dense.v, a.dense.v, atol=1e-6)
    assert (b.dense.segm == a.dense.segm).all()
    assert (twice.image == sample.image).all()
    once = horizontal_flip(sample, symmetry).instances[0].dense
    assert once.part.tolist() == CHART_MIRROR[a.dense.part].tolist()


def test_symmetry_files(tmp_path):
    from scipy.io import savemat

    tables = _u_reversing_tables()
    cells_u = np.empty((1, 24), dtype=object)
    cells_v = np.empty((1, 24), dtype=object)
    for k in range(24):
        cells_u[0, k] = tables.u_tables[k]
        cells_v[0, k] = tables.v_tables[k]
    savemat(tmp_path / "UV_symmetry_transforms.mat",
            {"U_transforms": cells_u, "V_transforms": cells_v})
    np.savez(tmp_path / "sym.npz", U_transforms=tables.u_tables, V_transforms=tables.v_tables)
    for name in ("UV_symmetry_transforms.mat", "sym.npz"):
        loaded = load_symmetry(tmp_path / name)
        part, u, v = loaded.mirror(np.array([5, 0]), np.array([0.2, 0.3]), np.array([0.4, 0.7]))
        assert part.tolist() == [6, 0]
        np.testing.assert_allclose(u, [1 - 51 / 255, 0.3], atol=1e-6)
        np.testing.assert_allclose(v, [102 / 255, 0.7], atol=1e-6)
    with pytest.raises(FileNotFoundError, match="symmetry file not found"):
        load_symmetry(tmp_path / "none.mat")
    np.savez(tmp_path / "bad.npz", U_transforms=tables.u_tables)
    with pytest.raises(ValueError, match="V_transforms"):
        load_symmetry(tmp_path / "bad.npz")


def test_photometric_jitter_keeps_grey_grey_and_changes_colour():
    rng = np.random.default_rng(4)
    grey = np.full((8, 8, 3), 100, np.uint8)
    cfg = AugmentationConfig(brightness=0.0, contrast=0.0, saturation=0.5)
    out = photometric_jitter(grey, rng, cfg)
    assert (out == grey).all()  # saturation has nothing to change on grey
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 2] = 200
    out = photometric_jitter(colour, np.random.default_rng(4), AugmentationConfig())
    assert out.shape == colour.shape and out.dtype == np.uint8
    assert not (out == colour).all()
