"""Geodesic distances on the Anny surface (GPS evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from densepose_ros.synth.charts import load_charts
from densepose_ros.synth.geodesic import GeodesicConfig, SurfaceGeodesics

# Stored distances are rounded to millimetres.
ROUNDING_M = 0.0015


@pytest.fixture(scope="module")
def geo():
    return SurfaceGeodesics()


def test_distances_are_a_metric_on_samples(geo):
    m = geo.matrix
    assert geo.num_samples >= 500
    np.testing.assert_array_equal(m, m.T)
    assert (np.diag(m) == 0).all()
    off = m[~np.eye(len(m), dtype=bool)]
    assert off.min() > 0
    rng = np.random.default_rng(0)
    i, j, k = rng.integers(0, len(m), size=(3, 200_000))
    assert (m[i, k] <= m[i, j] + m[j, k] + ROUNDING_M).all()


def test_geodesics_are_at_least_the_straight_line(geo):
    charts = load_charts()
    points = charts.rest_vertices[geo.sample_vertex].astype(np.float64) * geo.scale
    straight = np.linalg.norm(points[:, None] - points[None], axis=-1)
    assert (geo.matrix + ROUNDING_M >= straight).all()
    # Head top to the sole: at least the scaled body height minus a little.
    top, bottom = points[:, 2].argmax(), points[:, 2].argmin()
    height = GeodesicConfig().body_height_m
    assert height * 0.95 < geo.matrix[top, bottom] < height * 1.6


def test_hand_to_hand_is_longer_than_hand_to_wrist(geo):
    # Chart 4 = left hand, 3 = right hand, 19 = left lower arm front (V = 1 at the wrist).
    left_hand, right_hand, left_wrist, left_elbow = geo.locate(
        np.array([4, 3, 19, 19]),
        np.array([0.25, 0.25, 0.5, 0.5]),
        np.array([0.5, 0.5, 0.95, 0.05]),
    )
    hand_to_hand = geo.distance(left_hand, right_hand)
    hand_to_wrist = geo.distance(left_hand, left_wrist)
    assert hand_to_hand > 1.0  # across both arms and the chest of a 1.7 m body
    assert hand_to_wrist < 0.2
    assert geo.distance(left_hand, left_elbow) > hand_to_wrist


def test_locate_finds_samples_of_the_requested_chart(geo):
    charts = load_charts()
    # A sample located from a point of chart c lies on a triangle of chart c.
    rng = np.random.default_rng(1)
    part = rng.integers(1, 25, size=500)
    found = geo.locate(part, rng.random(500), rng.random(500))
    assert (found >= 0).all()
    vertex_charts = {}
    for face, chart in zip(charts.faces.tolist(), charts.face_chart.tolist(), strict=True):
        for vtx in face:
            vertex_charts.setdefault(vtx, set()).add(chart)
    for p, s in zip(part, found, strict=True):
        assert p in vertex_charts[int(geo.sample_vertex[s])]
    assert (geo.locate(np.zeros(3, int), np.zeros(3), np.zeros(3)) == -1).all()


def test_locate_recovers_a_surface_point_from_its_uv(geo):
    # A sample's own (I, U, V), read from the chart asset, locates that very sample.
    charts = load_charts()
    face_of = {}
    for f, face in enumerate(charts.faces.tolist()):
        for k, vtx in enumerate(face):
            face_of.setdefault(vtx, (f, k))
    chosen = np.arange(0, geo.num_samples, 7)
    faces, corners = zip(*(face_of[int(v)] for v in geo.sample_vertex[chosen]), strict=True)
    faces, corners = np.array(faces), np.array(corners)
    uv = charts.corner_uv[faces, corners]
    found = geo.locate(charts.face_chart[faces], uv[:, 0], uv[:, 1])
    # Same sample, or one within a couple of centimetres (samples sharing a UV spot).
    assert (geo.distance(found, chosen) < 0.03).mean() > 0.97


def test_graph_geodesics_match_great_circles_on_a_sphere():
    # The distance graph (mesh edges + unfolded cross-edge paths) on an icosphere against
    # the exact great-circle distances of the unit sphere.
    import trimesh
    from scipy.sparse.csgraph import dijkstra

    from densepose_ros.synth.geodesic import _edge_graph

    sphere = trimesh.creation.icosphere(subdivisions=4)
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    sources = np.arange(0, len(vertices), 97)
    graph_d = dijkstra(_edge_graph(vertices, faces), directed=False, indices=sources)
    exact = np.arccos(np.clip(vertices[sources] @ vertices.T, -1.0, 1.0))
    far = exact > 0.3
    ratio = graph_d[far] / exact[far]
    assert np.median(ratio) < 1.03
    assert ratio.max() < 1.08
    assert ratio.min() > 0.99  # the inscribed mesh is barely shorter than the sphere
