"""``densepose synth``: DensePose-COCO output checked against the exact rendered label maps."""

from __future__ import annotations

import argparse
import dataclasses
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from densepose_ros.cli import main as cli_main
from densepose_ros.cli import synth as synth_cli
from densepose_ros.synth.charts import CHART_TO_COARSE
from densepose_ros.synth.scene import SceneConfig
from densepose_ros.synth.writer import WriterConfig, write_dataset

# pycocotools' RLE decoding warns under numpy 2 (its own code, harmless here).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# Close, fairly large people so every check has pixels to work on; small images stay fast.
SCENE = dataclasses.replace(SceneConfig(), width=240, height=180, persons=(2, 3),
                            distance_m=(2.5, 4.0))
CONFIG = WriterConfig(num_images=4, seed=11, workers=1, save_maps=True, preview_images=2,
                      scene=SCENE)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, CONFIG, progress=False)
    return out


def _maps(dataset, image):
    stem = image["file_name"].rsplit(".", 1)[0]
    with np.load(dataset / "maps" / f"{stem}.npz") as data:
        return {k: data[k] for k in data.files}


def _anns_with_maps(dataset):
    coco = COCO(str(dataset / "annotations.json"))
    for image in coco.dataset["images"]:
        maps = _maps(dataset, image)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            yield coco, maps, ann


def test_json_loads_with_pycocotools_and_images_exist(dataset):
    coco = COCO(str(dataset / "annotations.json"))
    assert coco.loadCats(coco.getCatIds())[0]["name"] == "person"
    assert coco.getCatIds() == [1]
    assert len(coco.dataset["images"]) == CONFIG.num_images
    assert len(coco.getAnnIds()) >= CONFIG.num_images * 2 - 2  # a person may hide entirely
    for image in coco.dataset["images"]:
        pixels = cv2.imread(str(dataset / "images" / image["file_name"]))
        assert pixels.shape == (image["height"], image["width"], 3) == (180, 240, 3)
    assert (dataset / "preview.png").is_file()


def test_segmentation_bbox_and_area_match_the_instance_map(dataset):
    for coco, maps, ann in _anns_with_maps(dataset):
        mask = coco.annToMask(ann).astype(bool)
        instance_masks = [maps["instance"] == k for k in range(1, maps["instance"].max() + 1)]
        assert any((mask == m).all() for m in instance_masks)
        assert mask.sum() == ann["area"]
        rows, cols = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        assert (x, y, x + w - 1, y + h - 1) == (cols.min(), rows.min(), cols.max(), rows.max())


def test_densepose_points_lie_on_their_person_with_exact_labels(dataset):
    checked = 0
    for coco, maps, ann in _anns_with_maps(dataset):
        if "dp_I" not in ann:
            continue
        n = len(ann["dp_I"])
        assert 70 <= n <= 130
        assert all(len(ann[k]) == n for k in ("dp_x", "dp_y", "dp_U", "dp_V"))
        x, y, w, h = ann["bbox"]
        # The documented loader convention: pixel = box corner + dp / 256 * box size.
        px = np.floor(x + np.array(ann["dp_x"]) / 256.0 * w).astype(int)
        py = np.floor(y + np.array(ann["dp_y"]) / 256.0 * h).astype(int)
        person = coco.annToMask(ann).astype(bool)
        assert person[py, px].all()
        np.testing.assert_array_equal(maps["part"][py, px], ann["dp_I"])
        np.testing.assert_allclose(maps["u"][py, px], ann["dp_U"], atol=1e-5)
        np.testing.assert_allclose(maps["v"][py, px], ann["dp_V"], atol=1e-5)
        assert 1 <= min(ann["dp_I"]) and max(ann["dp_I"]) <= 24
        assert 0 <= min(ann["dp_U"] + ann["dp_V"]) and max(ann["dp_U"] + ann["dp_V"]) <= 1
        # Spread over the body: points cover most of the parts the person shows.
        shown = {p for p in np.unique(maps["part"][person]) if (maps["part"][person] == p).sum()
                 > person.sum() / 20}
        assert len(shown & set(ann["dp_I"])) >= 0.8 * len(shown)
        checked += 1
    assert checked >= 4


def test_dp_masks_agree_with_the_rendered_parts(dataset):
    checked = 0
    for coco, maps, ann in _anns_with_maps(dataset):
        if "dp_masks" not in ann:
            continue
        assert len(ann["dp_masks"]) == 14
        x, y, w, h = (int(v) for v in ann["bbox"])
        person = coco.annToMask(ann).astype(bool)
        coarse = np.where(person, CHART_TO_COARSE[maps["part"]], 0)
        # Sample the box at the centres of a 256 x 256 grid.
        cols = np.floor(x + (np.arange(256) + 0.5) / 256 * w).astype(int)
        rows = np.floor(y + (np.arange(256) + 0.5) / 256 * h).astype(int)
        expected = coarse[rows[:, None], cols[None, :]]
        decoded = np.zeros((256, 256), int)
        for part, rle in enumerate(ann["dp_masks"], start=1):
            if rle:
                m = mask_utils.decode(rle).astype(bool)
                assert m.shape == (256, 256)
                assert not (decoded[m] > 0).any()  # parts do not overlap
                decoded[m] = part
            else:
                assert (expected == part).sum() < 30  # absent only if (almost) not shown
        # Nearest-neighbour resampling differs by at most a pixel row/column at borders.
        assert (decoded == expected).mean() > 0.95
        assert ((decoded > 0) == (expected > 0)).mean() > 0.97
        checked += 1
    assert checked >= 4


def test_visible_keypoints_are_on_their_person(dataset):
    for coco, _maps, ann in _anns_with_maps(dataset):
        kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
        assert ann["num_keypoints"] == (kp[:, 2] > 0).sum()
        person = coco.annToMask(ann).astype(bool)
        visible = kp[kp[:, 2] == 2]
        assert person[visible[:, 1].astype(int), visible[:, 0].astype(int)].all()
        assert (kp[kp[:, 2] == 0, :2] == 0).all()


def test_cli_is_deterministic_across_worker_counts(tmp_path, dataset):
    args = ["synth", "--num", "2", "--seed", "11", "--size", "240x180", "--persons", "2..3",
            "--no-progress", "--preview", "0"]
    assert cli_main([*args, "--out", str(tmp_path / "a"), "--workers", "2"]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "b"), "--workers", "1"]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "c"), "--seed", "12"]) == 0
    a, b, c = (json.loads((tmp_path / d / "annotations.json").read_text()) for d in "abc")
    assert a["annotations"] == b["annotations"]
    assert a["annotations"] != c["annotations"]
    for name in ("000000.jpg", "000001.jpg"):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (
            tmp_path / "b" / "images" / name
        ).read_bytes()


def test_cli_parses_size_and_person_ranges():
    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    args = parser.parse_args(["--out", "x", "--size", "640x480", "--persons", "1..4"])
    assert args.size == (640, 480) and args.persons == (1, 4)
    assert parser.parse_args(["--out", "x", "--persons", "2"]).persons == (2, 2)
    for bad in (["--size", "640"], ["--persons", "3..1"], ["--persons", "a..b"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["--out", "x", *bad])


def test_robot_domain_look_and_bag(tmp_path):
    """`--domain robot --bag`: the same people under the robot's camera and light (darker,
    warmer than the default look of the same seed), and the frames as a readable bag."""
    from rosbags.rosbag2 import Reader

    from densepose_ros.io.bag_io import typestore

    means = {}
    for domain in ("default", "robot"):
        out = tmp_path / domain
        args = ["synth", "--num", "3", "--seed", "4", "--out", str(out), "--size", "240x180",
                "--workers", "1", "--no-progress", "--preview", "0", "--domain", domain]
        assert cli_main(args + (["--bag"] if domain == "robot" else [])) == 0
        images = [cv2.imread(str(p)) for p in sorted((out / "images").glob("*.jpg"))]
        means[domain] = np.mean([im.reshape(-1, 3).mean(axis=0) for im in images], axis=0)
    blue, red = 0, 2  # OpenCV's BGR
    assert means["robot"].sum() < 0.8 * means["default"].sum()  # dim light
    assert means["robot"][red] / means["robot"][blue] > \
        means["default"][red] / means["default"][blue]  # warm light
    with Reader(tmp_path / "robot" / "bag") as reader:
        messages = list(reader.messages())
    assert [c.topic for c, _, _ in messages] == ["/camera/color/image_raw"] * 3
    first = typestore().deserialize_cdr(messages[0][2], "sensor_msgs/msg/Image")
    stored = cv2.imread(str(tmp_path / "robot" / "images" / "000000.jpg"))
    assert (first.height, first.width) == (180, 240)
    np.testing.assert_array_equal(first.data.reshape(180, 240, 3), stored)
