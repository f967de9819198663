"""`densepose label`: a teacher's pseudo-labels from a bag, a video and a folder, as
DensePose-COCO that pycocotools and the training loader read; sampling, confidence,
determinism and the flip test-time augmentation."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from densepose_ros.data.symmetry import CHART_MIRROR, LookupTableSymmetry
from densepose_ros.inference.postprocess import person_iuv_charts
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult
from densepose_ros.tools.label import UNSURE, flip_averaged

from node_fixtures import REPO_ROOT, STAMP0, vtest_frames


def label(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "densepose_ros", "label", "--no-progress",
                           *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A rosbag2 of 8 real 640x480 street frames (frames 2 and 3 repeat frame 1, as a
    camera standing still gives), a 4-frame video and a folder of 2 images."""
    from densepose_ros.io.bag_io import BagWriter, image_to_cdr

    root = tmp_path_factory.mktemp("sources")
    frames = vtest_frames(40, (640, 480))[::5]
    bag_frames = [frames[0], frames[1], frames[1], frames[1], *frames[2:6]]
    with BagWriter(root / "bag", "sqlite3") as writer:
        for k, frame in enumerate(bag_frames):
            stamp = STAMP0 + k * 100_000_000
            writer.write("/camera/image_raw", "sensor_msgs/msg/Image", stamp,
                         image_to_cdr(frame, stamp, "camera"))
    video = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                            (640, 480))
    for frame in frames[4:8]:
        video.write(frame)
    video.release()
    (root / "photos").mkdir()
    for k, frame in enumerate(frames[6:8]):
        cv2.imwrite(str(root / "photos" / f"p{k}.png"), frame)
    return root


def test_labels_are_densepose_coco_the_loader_reads(tmp_path, sources):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    from densepose_ros.data.dataset import DatasetSpec, DensePoseCocoDataset

    out = tmp_path / "labels"
    done = label(str(sources / "bag"), str(sources / "clip.avi"), str(sources / "photos"),
                 "--teacher", "models/densepose_default.pth", "--out", str(out),
                 "--keep-probs")
    assert done.returncode == 0, done.stderr
    coco = COCO(str(out / "annotations.json"))
    # the bag's two repeats of frame 1 are skipped as near-duplicates: 6 + 4 + 2 frames
    assert len(coco.imgs) == 12
    assert [img["frame"] for img in coco.imgs.values()][:6] == [0, 1, 4, 5, 6, 7]
    assert len(coco.anns) >= 12, "the default model finds the pedestrians"
    for ann in coco.anns.values():
        image = coco.imgs[ann["image_id"]]
        assert ann["score"] >= 0.8 and ann["category_id"] == 1
        mask = mask_utils.decode(ann["segmentation"])
        assert mask.shape == (image["height"], image["width"]) and mask.sum() == ann["area"]
        maps = np.load(out / "maps" / image["file_name"].replace(".jpg", ".npz"))
        if "dp_x" in ann:
            x, y, w, h = ann["bbox"]
            cols = (x + np.asarray(ann["dp_x"]) / 256 * w - 0.5).round().astype(int)
            rows = (y + np.asarray(ann["dp_y"]) / 256 * h - 0.5).round().astype(int)
            # every point is a sure pixel of this person, with the map's own chart and U
            np.testing.assert_array_equal(maps["part"][rows, cols], ann["dp_I"])
            assert (maps["confidence"][rows, cols] >= 0.5).all()
            np.testing.assert_allclose(maps["u"][rows, cols], ann["dp_U"], atol=1e-5)
            assert len(ann["dp_masks"]) == 14
            assert sum(mask_utils.decode(m).sum() for m in ann["dp_masks"] if m) > 0
    maps = np.load(out / "maps" / "000000.npz")
    assert maps["probs"].shape[1:] == (25, 56, 56) and maps["boxes"].shape[1] == 4
    np.testing.assert_allclose(maps["probs"].astype(np.float32).sum(axis=1), 1, atol=0.02)
    dataset = DensePoseCocoDataset(DatasetSpec(out / "annotations.json", symmetry="anny"))
    samples = [dataset[i] for i in range(len(dataset))]
    assert sum(len(s.instances) for s in samples) == len(coco.anns)
    assert any(i.dense is not None for s in samples for i in s.instances)


def test_sampling_confidence_and_determinism(tmp_path, sources):
    runs = {}
    for name, extra in (("a", []), ("b", []), ("sure", ["--min-confidence", "0.95"]),
                        ("every2", ["--every", "2", "--dedup", "0", "--max-frames", "3"])):
        out = tmp_path / name
        done = label(str(sources / "bag"), "--teacher", "models/densepose_default.pth",
                     "--out", str(out), "--seed", "3", *extra)
        assert done.returncode == 0, done.stderr
        runs[name] = out
    text = lambda run: (run / "annotations.json").read_text()  # noqa: E731
    assert text(runs["a"]) == text(runs["b"])  # deterministic for a seed
    every2 = json.loads(text(runs["every2"]))
    assert [img["frame"] for img in every2["images"]] == [0, 2, 4]
    unsure = {name: sum((np.load(p)["part"] == UNSURE).sum()
                        for p in sorted((runs[name] / "maps").glob("*.npz")))
              for name in ("a", "sure")}
    assert unsure["sure"] > unsure["a"] > 0


def test_bad_inputs_are_clear_errors(tmp_path, sources):
    done = label(str(tmp_path / "missing.mp4"), "--teacher", "models/densepose_default.pth",
                 "--out", str(tmp_path / "o1"))
    assert done.returncode == 2 and "missing.mp4" in done.stderr
    done = label(str(sources / "photos"), "--teacher", "models/densepose_default.pth",
                 "--out", str(tmp_path / "o2"), "--flip")
    assert done.returncode == 2 and "--symmetry" in done.stderr
    done = label(str(sources / "photos"), "--teacher", str(tmp_path / "nope.pth"),
                 "--out", str(tmp_path / "o3"))
    assert done.returncode == 2 and "nope.pth" in done.stderr


class MirrorConsistentTeacher:
    """A teacher whose predictions on the mirrored image are exactly the mirror of its
    predictions on the image (a perfect model): `predict_on_boxes` returns ``charts``
    mirrored by hand: grid flipped, charts swapped left/right, U/V through the symmetry."""

    def __init__(self, charts: DensePoseChartOutput, symmetry):
        fine = charts.fine_segm.flip(-1)[:, torch.from_numpy(CHART_MIRROR)]
        u, v = torch.zeros_like(charts.u), torch.zeros_like(charts.v)
        for chart in range(1, 25):
            part = np.full(charts.u[:, chart].shape, chart)
            mirrored, mu, mv = symmetry.mirror(part, charts.u[:, chart].numpy(),
                                               charts.v[:, chart].numpy())
            target = int(mirrored.flat[0])
            u[:, target], v[:, target] = torch.from_numpy(mu), torch.from_numpy(mv)
        self.charts = DensePoseChartOutput(charts.coarse_segm.flip(-1), fine,
                                           u.flip(-1), v.flip(-1))
        self.boxes = None

    def predict_on_boxes(self, image, boxes):
        self.boxes = boxes
        return DensePoseResult(torch.as_tensor(boxes), torch.ones(len(boxes)), self.charts,
                               image.shape[:2])


def test_flip_averaging_of_a_mirror_consistent_teacher_changes_nothing():
    """Charts with a left-side chart (3) on the left and a right-side one (8) on the right:
    the perfect mirror prediction, mapped back, agrees everywhere, so the average keeps
    every label and U/V. A mapping that forgot the left/right swap or the symmetry would
    put chart 4 / 7 there or move U/V. The symmetry is a table in DensePose's file layout
    that mirrors U (U' = 1 - U), so a forgotten U/V mapping shows."""
    index = np.arange(256, dtype=np.float32) / 255
    symmetry = LookupTableSymmetry(np.broadcast_to(1 - index, (24, 256, 256)),
                                   np.broadcast_to(index[:, None], (24, 256, 256)))
    m = 16
    fine = torch.full((1, 25, m, m), -4.0)
    fine[0, 3, :, : m // 2] = 4.0
    fine[0, 8, :, m // 2:] = 4.0
    coarse = torch.stack([torch.full((m, m), -3.0), torch.full((m, m), 3.0)])[None]
    grid = torch.linspace(0.1, 0.9, m)
    u = grid.expand(1, 25, m, m).clone()
    v = grid[:, None].expand(1, 25, m, m).clone()
    charts = DensePoseChartOutput(coarse, fine, u, v)
    image = np.zeros((120, 200, 3), np.uint8)
    result = DensePoseResult(torch.tensor([[20.0, 10.0, 84.0, 106.0]]), torch.tensor([0.9]),
                             charts, (120, 200))
    teacher = MirrorConsistentTeacher(charts, symmetry)
    averaged = flip_averaged(teacher, image, result, symmetry)
    np.testing.assert_allclose(teacher.boxes, [[200 - 84, 10, 200 - 20, 106]])
    (before,), (after,) = person_iuv_charts(result), person_iuv_charts(averaged)
    np.testing.assert_array_equal(after.labels, before.labels)
    assert set(np.unique(after.labels)) == {3, 8}
    # the tables quantise U and V to 1/255 each way
    np.testing.assert_allclose(after.u, before.u, atol=5e-3)
    np.testing.assert_allclose(after.v, before.v, atol=5e-3)
