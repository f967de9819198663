"""`densepose infer` and `densepose bench` run for real on images, a folder and a video."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from model_fixtures import light_model, light_weights, parity_image  # noqa: F401

from densepose_ros.cli import main as cli_main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two images (one in a sub-folder) and a 3-frame video cut from the parity scene."""
    root = tmp_path_factory.mktemp("inputs")
    scene = parity_image()
    first = cv2.resize(scene, (320, 240), interpolation=cv2.INTER_AREA)
    second = cv2.resize(scene[:, :800], (240, 240), interpolation=cv2.INTER_AREA)
    (root / "folder" / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "street.png"), first)
    cv2.imwrite(str(root / "folder" / "sub" / "crop.jpg"), second)
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for shift in range(3):
        writer.write(cv2.resize(np.roll(scene, 40 * shift, axis=1), (160, 120)))
    writer.release()
    return root


def test_infer_writes_overlays_iuv_and_json(tmp_path, inputs, light_weights):  # noqa: F811
    out = tmp_path / "out"
    # The untrained test model scores low: a threshold that lets its boxes through.
    code = cli_main(["infer", str(inputs / "street.png"), str(inputs / "folder"),
                     "--weights", str(light_weights), "--out", str(out), "--no-progress",
                     "--score-threshold", "0.05"])
    assert code == 0
    for stem, (height, width) in (("street", (240, 320)), ("crop", (240, 240))):
        overlay = cv2.imread(str(out / f"{stem}_overlay.png"))
        iuv = cv2.imread(str(out / f"{stem}_iuv.png"))
        assert overlay.shape == iuv.shape == (height, width, 3)
        assert iuv[:, :, 0].max() <= 24
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["width"], record["height"]) == (width, height)
        assert record["image"].endswith((f"{stem}.png", f"{stem}.jpg"))
        assert record["persons"], "the untrained light model still reports boxes"
        for person in record["persons"]:
            x1, y1, x2, y2 = person["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert 0.0 <= person["score"] <= 1.0
            assert all(1 <= c <= 24 for c in person["charts"])
        scores = [p["score"] for p in record["persons"]]
        assert scores == sorted(scores, reverse=True)


def test_infer_keeps_persons_from_0_8_by_default(tmp_path):
    # As the node publishes them: the bundled model on a real street frame.
    from node_fixtures import vtest_frames

    cv2.imwrite(str(tmp_path / "street.png"), vtest_frames(1, size=None)[0])
    out = tmp_path / "out"
    assert cli_main(["infer", str(tmp_path / "street.png"), "--out", str(out),
                     "--no-progress"]) == 0
    persons = json.loads((out / "street.json").read_text())["persons"]
    scores = [p["score"] for p in persons]
    assert scores and min(scores) >= 0.8, scores
    # The bundled model has a keypoint head: 17 COCO keypoints per person, in body order
    # down the box (it is unsure of them on real people: scores are low, so only the layout
    # is checked): head (nose, eyes, ears) in the top quarter, ankles in the bottom quarter,
    # hips between.
    for person in persons:
        keypoints = np.array(person["keypoints"])
        assert keypoints.shape == (17, 3)
        x1, y1, x2, y2 = person["box"]
        assert (keypoints[:, 0] >= x1).all() and (keypoints[:, 0] <= x2).all()
        height_fraction = (keypoints[:, 1] - y1) / (y2 - y1)
        head, hips, ankles = (height_fraction[s].mean() for s in (slice(0, 5), slice(11, 13),
                                                                    slice(15, 17)))
        assert head < 0.25 < hips < 0.75 < ankles, (head, hips, ankles)


def test_infer_without_resize_and_with_threshold(tmp_path, inputs, light_weights):  # noqa: F811
    out = tmp_path / "out"
    code = cli_main(["infer", str(inputs / "street.png"), "--weights", str(light_weights),
                     "--out", str(out), "--resize", "none", "--score-threshold", "0.6",
                     "--no-progress"])
    assert code == 0
    record = json.loads((out / "street.json").read_text())
    assert all(p["score"] > 0.6 for p in record["persons"])


def test_infer_on_video_writes_a_video_and_per_frame_json(tmp_path, inputs,
                                                         light_weights):  # noqa: F811
    out = tmp_path / "out"
    code = cli_main(["infer", str(inputs / "clip.avi"), "--weights", str(light_weights),
                     "--out", str(out), "--no-progress"])
    assert code == 0
    record = json.loads((out / "clip.json").read_text())
    assert (record["width"], record["height"]) == (160, 120)
    assert [f["frame"] for f in record["frames"]] == [0, 1, 2]
    capture = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 3


def test_infer_errors_are_clear(tmp_path, inputs, light_weights, capsys,  # noqa: F811
                                monkeypatch):
    monkeypatch.setenv("DENSEPOSE_MODEL_DIR", str(tmp_path / "no_models"))
    monkeypatch.setattr("densepose_ros.paths.default_model_path", lambda: None)
    assert cli_main(["infer", str(inputs / "street.png"), "--out", str(tmp_path)]) == 2
    assert "no default model" in capsys.readouterr().err
    assert cli_main(["infer", str(tmp_path / "missing.png"), "--weights",
                     str(light_weights), "--out", str(tmp_path)]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert cli_main(["infer", str(inputs / "street.png"), "--weights",
                     str(tmp_path / "none.pth"), "--out", str(tmp_path)]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_bench_prints_every_stage(tmp_path, light_weights, capsys):  # noqa: F811
    report = tmp_path / "bench.json"
    code = cli_main(["bench", "--weights", str(light_weights), "--sizes", "160x120",
                     "--repeats", "1", "--warmup", "0", "--json", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    for stage in ("preprocess", "backbone", "rpn", "box_head", "densepose_head",
                  "postprocess", "total"):
        assert stage in out
    timing = json.loads(report.read_text())["sizes"]["160x120"]
    assert timing["median_s"]["backbone"] > 0
