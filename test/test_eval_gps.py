"""GPS of single (detection, annotation) pairs against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_fixtures import (
    TINY_GEODESIC,
    TINY_PART,
    TINY_UV,
    iuv_for,
    person_annotation,
    tiny_surface,
)

from densepose_ros.data.coco import parse_densepose_coco
from densepose_ros.evaluation.convert import main as convert_main
from densepose_ros.evaluation.gps import compare_points, locate_annotation
from densepose_ros.evaluation.surface import SampledSurfaceMetric, load_sampled_surface

BBOX = [10.0, 20.0, 51.0, 102.0]
# (col, row, I, U, V) of the annotated points, on the box grid.
GT_POINTS = [
    (2, 3, 1, 0.05, 0.02),   # torso, nearest sample id0
    (7, 40, 1, 0.1, 0.9),    # torso, id2
    (30, 50, 3, 0.4, 0.6),   # right hand, id3
    (45, 90, 1, 0.95, 0.05),  # torso, id1
]
# What the detection predicts at those pixels.
PRED_POINTS = [
    (2, 3, 1, 0.9, 0.1),     # torso id1: geodesic 0.1 from id0
    (7, 40, 1, 0.0, 0.8),    # torso id2: geodesic 0
    (30, 50, 1, 0.1, 0.1),   # torso id0: geodesic 0.5 from id3 (hand kappa)
    (45, 90, 0, 0.0, 0.0),   # background: scores 0
]


def _instance(points=GT_POINTS, bbox=BBOX):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 200, "width": 200}],
            "annotations": [person_annotation(1, 1, bbox, points)],
            "categories": [{"id": 1, "name": "person"}]}
    return parse_densepose_coco(data).images[0].instances[0]


def test_gps_matches_hand_computation():
    surface = tiny_surface()
    instance = _instance()
    gt_ids = locate_annotation(instance, surface)
    assert gt_ids.tolist() == [0, 2, 3, 1]
    prediction = iuv_for(BBOX, PRED_POINTS, background=True)
    result = compare_points(instance, gt_ids, prediction, surface, 255.0)
    assert result.pred_part.tolist() == [1, 1, 1, 0]
    np.testing.assert_allclose(result.distance[:3], [0.1, 0.0, 0.5])
    assert math.isinf(result.distance[3])
    torso, hand = 0.351, 0.107
    expected = (math.exp(-0.1 ** 2 / (2 * torso ** 2)) + 1.0
                + math.exp(-0.5 ** 2 / (2 * hand ** 2)) + 0.0) / 4
    assert result.gps == pytest.approx(expected, abs=1e-9)
    assert result.gps == pytest.approx(0.49006, abs=1e-5)  # the same, evaluated by hand


def test_paper_kappa_option():
    surface = tiny_surface()
    instance = _instance()
    gt_ids = locate_annotation(instance, surface)
    prediction = iuv_for(BBOX, PRED_POINTS, background=True)
    result = compare_points(instance, gt_ids, prediction, surface, 255.0,
                            per_part_kappa=False)
    k = 0.255
    expected = (math.exp(-0.01 / (2 * k * k)) + 1.0 + math.exp(-0.25 / (2 * k * k))) / 4
    assert result.gps == pytest.approx(expected, abs=1e-9)


def test_points_outside_the_detection_score_zero():
    surface = tiny_surface()
    instance = _instance()
    gt_ids = locate_annotation(instance, surface)
    perfect = iuv_for(BBOX, GT_POINTS)
    # The same prediction on a box cut to the left 20 columns: points at columns 30 and 45
    # fall outside it.
    cut = iuv_for([10.0, 20.0, 20.0, 102.0], GT_POINTS[:2])
    full = compare_points(instance, gt_ids, perfect, surface, 255.0)
    part = compare_points(instance, gt_ids, cut, surface, 255.0)
    assert full.gps == pytest.approx(1.0)
    assert part.pred_part.tolist() == [1, 1, 0, 0]
    assert part.gps == pytest.approx(0.5)


def test_iuv_grid_smaller_than_box_is_scaled():
    surface = tiny_surface()
    bbox = [10.0, 20.0, 52.0, 102.0]
    instance = _instance(bbox=bbox)
    gt_ids = locate_annotation(instance, surface)
    # A half-resolution IUV: box pixel (c, r) lies in grid cell (c // 2, r // 2).
    half = iuv_for(bbox, [(c // 2, r // 2, i, u, v) for c, r, i, u, v in GT_POINTS],
                   grid_wh=(26, 51))
    result = compare_points(instance, gt_ids, half, surface, 255.0)
    assert result.gps == pytest.approx(1.0)


def test_condensed_and_square_geodesics_agree(tmp_path):
    square = tiny_surface()
    from scipy.spatial.distance import squareform

    condensed = SampledSurfaceMetric(TINY_PART, TINY_UV,
                                     geodesic_condensed=squareform(TINY_GEODESIC))
    a, b = np.array([0, 1, 2, 3, 3, 2]), np.array([3, 2, 1, 0, 3, 0])
    np.testing.assert_allclose(square.distance(a, b), [0.5, 0.25, 0.25, 0.5, 0.0, 0.2])
    np.testing.assert_allclose(condensed.distance(a, b), square.distance(a, b))
    condensed.save(tmp_path / "s.npz")
    loaded = load_sampled_surface(tmp_path / "s.npz")
    np.testing.assert_allclose(loaded.distance(a, b), square.distance(a, b))
    assert loaded.locate(np.array([1, 3, 1]), np.array([0.9, 0.1, 0.1]),
                         np.array([0.2, 0.9, 0.8])).tolist() == [1, 3, 2]


def test_bad_surface_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="geodesic file not found"):
        load_sampled_surface(tmp_path / "missing.npz")
    np.savez(tmp_path / "no_geo.npz", part=TINY_PART, uv=TINY_UV)
    with pytest.raises(ValueError, match="exactly one of"):
        load_sampled_surface(tmp_path / "no_geo.npz")
    np.savez(tmp_path / "no_uv.npz", part=TINY_PART, geodesic=TINY_GEODESIC)
    with pytest.raises(ValueError, match="missing arrays"):
        load_sampled_surface(tmp_path / "no_uv.npz")


def test_converter_reads_the_original_densepose_layout(tmp_path):
    """The original files store the condensed matrix with both orders reversed.

    For n = 4 vertices that file lists the pairs (0-based) in this order, as the original
    index arithmetic gives: (0,1) (0,2) (1,2) (0,3) (1,3) (2,3).
    """
    import pickle

    from scipy.io import savemat

    n_pairs = {(0, 1): 0, (0, 2): 1, (1, 2): 2, (0, 3): 3, (1, 3): 4, (2, 3): 5}
    original = np.zeros((6, 1))
    for (i, j), k in n_pairs.items():
        original[k, 0] = TINY_GEODESIC[i, j]
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as handle:
        pickle.dump({"Pdist_matrix": original}, handle)
    # Samples listed in a shuffled order, mapped to their vertices by the 1-based index.
    order = np.array([2, 0, 3, 1])
    savemat(tmp_path / "SMPL_subdiv.mat", {
        "U_subdiv": TINY_UV[order, 0][None], "V_subdiv": TINY_UV[order, 1][None],
        "Part_ID_subdiv": TINY_PART[order][None]})
    savemat(tmp_path / "SMPL_SUBDIV_TRANSFORM.mat", {"index": (order + 1)[:, None]})
    assert convert_main([str(tmp_path / name) for name in (
        "SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl", "smpl.npz")]) == 0
    surface = load_sampled_surface(tmp_path / "smpl.npz")
    # Sample k of the converted file is vertex order[k].
    for a in range(4):
        for b in range(4):
            got = surface.distance(np.array([a]), np.array([b]))[0]
            assert got == pytest.approx(TINY_GEODESIC[order[a], order[b]], abs=1e-6)
