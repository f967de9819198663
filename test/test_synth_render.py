"""The CPU renderer: rasteriser geometry, exact occlusion, IUV correctness, flip symmetry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from densepose_ros.synth.body import (
    ACTIVITIES,
    JOINT_LIMITS_DEG,
    BodySample,
    load_anny,
    pose_bodies,
    sample_body,
)
from densepose_ros.synth.charts import MIRROR_CHART, load_charts, mirror_iuv
from densepose_ros.synth.geodesic import SurfaceGeodesics
from densepose_ros.synth.raster import rasterize
from densepose_ros.synth.scene import Camera, SceneConfig, rasterize_people, render_scene

H, W = 160, 120


def test_rasterizer_nearest_triangle_wins_and_areas_match():
    # Two right triangles with 40-pixel legs (area 800); the second is nearer and overlaps
    # the first on a triangle of area 200.
    points = np.array([[10, 10, 5.0], [50, 10, 5.0], [10, 50, 5.0],
                       [20, 20, 2.0], [60, 20, 2.0], [20, 60, 2.0]])  # fmt: skip
    faces = np.array([[0, 1, 2], [3, 5, 4]])  # both windings are drawn
    frags = rasterize(points, faces, 100, 100)
    assert abs((frags.face >= 0).sum() - 1400) < 100  # pixels on edges count: +- perimeter/2
    assert frags.face[25, 25] == 1 and frags.depth[25, 25] == pytest.approx(2.0)
    assert frags.face[15, 15] == 0 and frags.face[80, 80] == -1
    # Equal depths: barycentrics reproduce the pixel centre.
    ys, xs = np.nonzero(frags.face == 0)
    b = frags.bary[ys, xs]
    np.testing.assert_allclose(b.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(b @ points[:3, :2], np.c_[xs + 0.5, ys + 0.5], atol=1e-3)


def test_rasterizer_barycentrics_are_perspective_correct():
    camera = Camera(focal=100.0, cx=50.0, cy=50.0, height=0.0, pitch=0.0)
    cam = np.array([[-1.0, -1.0, 2.0], [2.0, -1.0, 6.0], [-1.0, 2.0, 4.0]])
    frags = rasterize(camera.project(cam), np.array([[0, 1, 2]]), 100, 100)
    ys, xs = np.nonzero(frags.face == 0)
    assert len(ys) > 200
    point = frags.bary[ys, xs] @ cam  # the 3D surface point each pixel sees
    pixel = camera.project(point)
    np.testing.assert_allclose(pixel[:, 0], xs + 0.5, atol=1e-2)
    np.testing.assert_allclose(pixel[:, 1], ys + 0.5, atol=1e-2)
    np.testing.assert_allclose(frags.depth[ys, xs], point[:, 2], rtol=1e-4)


def test_sampled_poses_respect_joint_limits_and_cover_activities():
    rng = np.random.default_rng(0)
    samples = [sample_body(rng) for _ in range(300)]
    assert {s.activity for s in samples} == set(ACTIVITIES)
    for s in samples:
        for name, angles in s.joint_angles_deg.items():
            limits = np.array(JOINT_LIMITS_DEG[name.split(".")[0]])
            assert (angles >= limits[:, 0] - 1e-9).all() and (angles <= limits[:, 1] + 1e-9).all()
        assert all(0.0 <= v <= 1.0 for v in s.phenotype.values())


@pytest.fixture(scope="module")
def two_bodies():
    rng = np.random.default_rng(5)
    samples = [sample_body(rng), sample_body(rng)]
    return pose_bodies(samples)


def _camera():
    return Camera(focal=160.0, cx=W / 2, cy=H / 2, height=1.0, pitch=0.0)


def _place(vertices, x, depth, yaw=0.0):
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float32)
    return _camera().to_camera(vertices @ rot.T + np.array([x, depth, 0.0], np.float32))


def test_people_occlude_each_other_exactly(two_bodies):
    front = _place(two_bodies.vertices[0], 0.0, 3.0)
    back = _place(two_bodies.vertices[1], 0.25, 5.0)
    both = rasterize_people([front, back], _camera(), H, W)
    alone_front = rasterize_people([front], _camera(), H, W)
    alone_back = rasterize_people([back], _camera(), H, W)
    overlap = alone_front.foreground & alone_back.foreground
    assert overlap.sum() > 200
    # Where both project, the nearer person is seen with exactly its own labels.
    assert (both.instance[alone_front.foreground] == 1).all()
    np.testing.assert_array_equal(both.part[overlap], alone_front.part[overlap])
    np.testing.assert_array_equal(both.u[overlap], alone_front.u[overlap])
    only_back = alone_back.foreground & ~alone_front.foreground
    assert (both.instance[only_back] == 2).all()
    np.testing.assert_array_equal(both.v[only_back], alone_back.v[only_back])
    assert ((both.part > 0) == (both.instance > 0)).all()


def test_rendered_iuv_points_back_to_the_surface_seen(two_bodies):
    # (I, U, V) of a pixel, located on the template through the charts, is a vertex whose
    # posed position projects back onto (near) that pixel.
    camera = _camera()
    cam = _place(two_bodies.vertices[0], 0.0, 2.6, yaw=0.4)
    labels = rasterize_people([cam], camera, H, W)
    ys, xs = np.nonzero(labels.foreground)
    geo = SurfaceGeodesics()
    sample = geo.locate(labels.part[ys, xs], labels.u[ys, xs], labels.v[ys, xs])
    projected = camera.project(cam[geo.sample_vertex[sample]])
    error = np.hypot(projected[:, 0] - xs - 0.5, projected[:, 1] - ys - 0.5)
    # Samples are ~4 cm apart: a few pixels at this distance (a 1.7 m body is ~100 px).
    assert np.median(error) < 3.0
    assert np.mean(error < 8.0) > 0.9


def test_mirrored_body_renders_as_the_flipped_image_with_mirrored_iuv(two_bodies):
    # Mirror the posed body (x -> -x, vertex i takes the place of its mirror) and render:
    # the result is the horizontally flipped image with charts/UV mapped by mirror_iuv.
    charts = load_charts()
    camera = _camera()
    cam = _place(two_bodies.vertices[1], 0.05, 2.8, yaw=-0.7)
    mirrored = (cam * np.array([-1, 1, 1], np.float32))[charts.vertex_mirror]
    a = rasterize_people([cam], camera, H, W)
    b = rasterize_people([mirrored], camera, H, W)
    part, u, v = mirror_iuv(a.part[:, ::-1], a.u[:, ::-1], a.v[:, ::-1])
    same = (part == b.part) & (b.part > 0)
    assert same.sum() / max((b.part > 0).sum(), 1) > 0.99
    np.testing.assert_allclose(u[same], b.u[same], atol=1e-3)
    np.testing.assert_allclose(v[same], b.v[same], atol=1e-3)
    assert (MIRROR_CHART[b.part[same]] != b.part[same]).any()  # the test sees real swaps


def test_render_scene_maps_are_consistent_and_deterministic():
    config = dataclasses.replace(SceneConfig(), width=W, height=H, persons=(2, 2),
                                 distance_m=(2.5, 3.5))
    scene = render_scene(7, config)
    again = render_scene(7, config)
    np.testing.assert_array_equal(scene.image, again.image)
    np.testing.assert_array_equal(scene.part, again.part)
    assert scene.image.shape == (H, W, 3) and scene.image.dtype == np.uint8
    assert scene.num_persons == 2 and scene.keypoints.shape == (2, 17, 3)
    fg = scene.instance > 0
    assert set(np.unique(scene.instance)) <= {0, 1, 2} and fg.any()
    assert ((scene.part > 0) == fg).all()
    assert (scene.u[~fg] == 0).all() and scene.u.max() <= 1 and scene.v.min() >= 0
    assert np.isfinite(scene.depth[fg]).all() and np.isinf(scene.depth[~fg]).all()
    # People are shaded, not flat: colour varies over the body.
    assert scene.image[fg].std(axis=0).mean() > 10
    assert isinstance(scene.activities[0], str)
    assert render_scene(8, config).part.tobytes() != scene.part.tobytes()


def test_body_sample_with_no_rotations_is_the_rest_pose():
    rest = BodySample(activity="standing", phenotype={"gender": 0.5, "age": 0.5, "muscle": 0.5,
                                                     "weight": 0.5, "height": 0.5,
                                                     "proportions": 0.5})
    posed = pose_bodies([rest])
    charts = load_charts()
    # anny's own zero pose at its default phenotype, moved to stand on z = 0.
    reference = load_anny()()["vertices"][0].detach().numpy()
    offset = posed.vertices[0] - reference
    assert np.abs(offset - offset.mean(0)).max() < 1e-5
    # ... which is the chart template, moved, up to a centimetre (anny's reference pose).
    shift = reference - charts.rest_vertices
    assert np.abs(shift - shift.mean(0)).max() < 0.01
    assert posed.vertices[0][:, 2].min() == pytest.approx(0.0, abs=1e-6)
    assert posed.keypoints.shape == (1, 17, 3)
    # Nose above the hips, left shoulder (COCO index 5) on the body's left (+x).
    assert posed.keypoints[0, 0, 2] > posed.keypoints[0, 11, 2]
    assert posed.keypoints[0, 5, 0] > 0 > posed.keypoints[0, 6, 0]


def test_objects_in_front_hide_people_and_their_labels():
    # Same seed with and without occluders: the people and their labels are the same,
    # except where a box stands in front (labels removed, keypoints no longer visible).
    base = dataclasses.replace(SceneConfig(), width=W, height=H, persons=(2, 2),
                               distance_m=(3.0, 4.0), real_background_prob=0.0)
    hidden_total = 0
    for seed in range(4):
        clear = render_scene(seed, dataclasses.replace(base, occluder_prob=0.0))
        boxed = render_scene(seed, dataclasses.replace(base, occluder_prob=1.0))
        kept = boxed.instance > 0
        assert (clear.instance[kept] == boxed.instance[kept]).all()
        np.testing.assert_array_equal(clear.part[kept], boxed.part[kept])
        np.testing.assert_array_equal(clear.u[kept], boxed.u[kept])
        removed = (clear.instance > 0) & ~kept
        assert (boxed.part[removed] == 0).all() and np.isinf(boxed.depth[removed]).all()
        assert (boxed.image[removed] != clear.image[removed]).any(axis=-1).mean() > 0.9
        assert (boxed.keypoints[..., 2] <= clear.keypoints[..., 2]).all()
        hidden_total += removed.sum()
    assert hidden_total > 100
