"""Distillation targets from a teacher's dense maps, on a hand-made frame, and a short
training run mixing a `densepose label` folder with synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from densepose_ros import paths
from densepose_ros.data.coco import DP_FRAME_SIZE
from densepose_ros.data.distill import ANNOTATED_POINTS_PER_PERSON, dense_target_from_maps
from densepose_ros.tools.label import iter_frames

from node_fixtures import REPO_ROOT


def toy_maps() -> dict:
    """A 20x30 frame: person 1 covers rows 4..11, columns 6..13 (chart 3, U = column / 30,
    V = row / 20) with one unsure pixel (255) and a low-confidence column (13); person 2 sits
    at rows 4..11, columns 20..23. The teacher's 4x4 probability grid over person 1's box
    [6, 4, 14, 12] puts chart 5 in its left half and chart 9 in its right half."""
    height, width = 20, 30
    part = np.zeros((height, width), np.uint8)
    instance = np.zeros((height, width), np.uint8)
    confidence = np.zeros((height, width), np.float16)
    part[4:12, 6:14], instance[4:12, 6:14], confidence[4:12, 6:14] = 3, 1, 0.9
    part[5, 7], instance[5, 7] = 255, 0  # unsure: no target at all
    confidence[4:12, 13] = 0.6  # sure enough for a part, not for U/V
    part[4:12, 20:24], instance[4:12, 20:24], confidence[4:12, 20:24] = 7, 2, 0.95
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    probs = np.zeros((2, 25, 4, 4), np.float16)
    probs[0, 5, :, :2], probs[0, 9, :, 2:] = 1, 1
    probs[1, 7] = 1
    return {"part": part, "instance": instance, "confidence": confidence,
            "u": (cols / 30).astype(np.float32), "v": (rows / 20).astype(np.float32),
            "probs": probs, "boxes": np.array([[6, 4, 14, 12], [20, 4, 24, 12]], np.float32)}


def test_dense_targets_are_the_persons_sure_pixels_on_the_box_frame():
    maps = toy_maps()
    box = np.array([6.0, 4.0, 14.0, 12.0])  # the annotation box of person 1
    target = dense_target_from_maps(maps, 1, box, uv_confidence=0.8, soft_targets=True)
    assert len(target.part) == 8 * 8 - 1  # every pixel of person 1 but the unsure one
    assert (target.part == 3).all()
    # pixel (row 4, column 6) is the box's top-left pixel: its centre on the 256 frame
    cols = target.x / DP_FRAME_SIZE * 8 + 6 - 0.5
    rows = target.y / DP_FRAME_SIZE * 8 + 4 - 0.5
    np.testing.assert_allclose(cols, np.round(cols), atol=1e-4)
    assert {(int(round(r)), int(round(c))) for r, c in zip(rows, cols, strict=True)} == \
        {(r, c) for r in range(4, 12) for c in range(6, 14)} - {(5, 7)}
    np.testing.assert_allclose(target.u, np.round(cols) / 30, atol=1e-6)
    np.testing.assert_allclose(target.v, np.round(rows) / 20, atol=1e-6)
    # U/V only where the teacher is sure enough (not column 13); 55 such pixels share the
    # weight of ~100 annotated points, so each counts fully
    sure_uv = np.round(cols) != 13
    assert (target.uv_weight[~sure_uv] == 0).all()
    assert sure_uv.sum() == 55 and ANNOTATED_POINTS_PER_PERSON >= 55
    np.testing.assert_allclose(target.uv_weight[sure_uv], 1.0)
    # soft targets: the teacher's grid cell of each pixel (left half chart 5, right half 9)
    assert target.part_probs.shape == (63, 25)
    left = np.round(cols) < 10
    assert (target.part_probs[left, 5] == 1).all() and (target.part_probs[~left, 9] == 1).all()
    # without soft targets, or thinned to every 2nd pixel
    assert dense_target_from_maps(maps, 1, box, uv_confidence=0.8,
                                  soft_targets=False).part_probs is None
    thin = dense_target_from_maps(maps, 1, box, uv_confidence=0.8, soft_targets=True,
                                  point_stride=2)
    assert len(thin.part) == 16
    # person 2 through its own box; nothing of person 1 leaks in; a box with no pixel: None
    other = dense_target_from_maps(maps, 2, np.array([18.0, 2.0, 26.0, 14.0]),
                                   uv_confidence=0.8, soft_targets=True)
    assert len(other.part) == 32 and (other.part == 7).all()
    assert dense_target_from_maps(maps, 1, np.array([0.0, 0.0, 3.0, 3.0]),
                                  uv_confidence=0.8, soft_targets=True) is None


def test_many_dense_pixels_share_one_persons_uv_weight():
    maps = toy_maps()
    maps["part"][:], maps["instance"][:], maps["confidence"][:] = 3, 1, 0.99
    target = dense_target_from_maps(maps, 1, np.array([0.0, 0.0, 30.0, 20.0]),
                                    uv_confidence=0.8, soft_targets=False)
    assert len(target.part) == 600
    np.testing.assert_allclose(target.uv_weight.sum(), ANNOTATED_POINTS_PER_PERSON, rtol=1e-5)
    # at most max_points of them, a different subset for another draw, all of the person
    draws = [dense_target_from_maps(maps, 1, np.array([0.0, 0.0, 30.0, 20.0]),
                                    uv_confidence=0.8, soft_targets=False, max_points=150,
                                    rng=np.random.default_rng(seed)) for seed in (1, 2)]
    assert [len(d.part) for d in draws] == [150, 150]
    assert not np.array_equal(draws[0].x, draws[1].x)
    np.testing.assert_allclose(draws[0].uv_weight.sum(), ANNOTATED_POINTS_PER_PERSON,
                               rtol=1e-5)


def test_training_mixes_distillation_and_synthetic_data(tmp_path):
    """`densepose label` on a short real clip, then `densepose train` on it mixed 1:1 with
    rendered people: the distillation samples carry dense soft targets, and training runs
    with finite losses."""
    from densepose_ros.data.dataset import DatasetSpec
    from densepose_ros.data.distill import DistillDataset

    python = [sys.executable, "-m", "densepose_ros"]
    run = lambda *args: subprocess.run([*python, *args], capture_output=True, text=True,  # noqa: E731
                                       cwd=REPO_ROOT, timeout=900)
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in list(iter_frames(paths.sample_data_dir() / "vtest.avi"))[:40:8]:
        writer.write(cv2.resize(frame.image, (640, 480)))
    writer.release()
    done = run("label", str(clip), "--teacher", "models/densepose_default.pth",
               "--out", str(tmp_path / "labels"), "--keep-probs", "--no-progress")
    assert done.returncode == 0, done.stderr
    done = run("synth", "--num", "4", "--seed", "2", "--out", str(tmp_path / "synth"),
               "--size", "320x240", "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr

    # every pixel (max_points 0) to count them
    dataset = DistillDataset(DatasetSpec(tmp_path / "labels" / "annotations.json",
                                         symmetry="anny", kind="distill", max_points=0))
    sparse = json.loads((tmp_path / "labels" / "annotations.json").read_text())
    points = [inst.dense for i in range(len(dataset)) for inst in dataset.load(i).instances]
    assert all(d is not None and d.part_probs is not None for d in points)
    sparse_points = sum(len(a.get("dp_x", [])) for a in sparse["annotations"])
    assert sum(len(d.part) for d in points) > 5 * sparse_points  # dense, not sampled

    config = tmp_path / "distill.yaml"
    config.write_text(f"""
model: R_18_FPN_tiny
init_weights: models/densepose_default.pth
datasets:
  - annotations: {tmp_path / 'labels' / 'annotations.json'}
    type: distill
    ratio: 1.0
    symmetry: anny
  - annotations: {tmp_path / 'synth' / 'annotations.json'}
    ratio: 1.0
    symmetry: anny
solver: {{optimizer: adamw, base_lr: 0.0002, max_iter: 6, warmup_iters: 2}}
batch_size: 2
num_workers: 0
output_dir: {tmp_path / 'run'}
log_period: 2
checkpoint_period: 6
""")
    done = run("train", "--config", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert metrics and all(np.isfinite(m["loss_densepose_I"]) for m in metrics)
    assert (tmp_path / "run" / "model_final.pth").is_file()
