"""Synthetic clips for tracking: rendered frames, ground-truth identities, the writer and
``densepose track-eval`` on them."""

import json

import numpy as np
import pytest

from densepose_ros.cli import main
from densepose_ros.synth.sequence import SequenceConfig, ground_truth, render_clip

CONFIG = SequenceConfig(frames=10, persons=(2, 2))


@pytest.fixture(scope="module")
def clip():
    return render_clip(11, CONFIG)


def test_people_walk_and_keep_their_look(clip):
    truth = ground_truth(clip, CONFIG.min_visible_px)
    assert len(clip) == 10 and all(len(frame) >= 1 for frame in truth)
    first = {pid: box for pid, box in truth[0]}
    last = {pid: box for pid, box in truth[-1]}
    moved = [abs((first[i][0] + first[i][2]) - (last[i][0] + last[i][2])) / 2
             for i in first if i in last]
    assert moved and min(moved) > 5, "each person walks across the view"
    # the background away from the people stays the same frame to frame (one look)
    still = (clip[0].instance == 0) & (clip[1].instance == 0)
    difference = np.abs(clip[0].image.astype(int) - clip[1].image.astype(int))[still]
    assert np.median(difference) < 8


def test_clips_are_deterministic(clip):
    again = render_clip(11, CONFIG)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(clip, again, strict=True))


def test_written_clips_track_perfectly_from_true_boxes(tmp_path, capsys):
    out = tmp_path / "clips"
    assert main(["synth", "--sequence", "--num", "2", "--frames", "8", "--out", str(out),
                 "--persons", "2..3", "--no-progress", "--workers", "1"]) == 0
    gt = json.loads((out / "clip_0000" / "gt.json").read_text())
    assert len(gt["frames"]) == 8 and (out / "clip_0000" / "000000.jpg").is_file()
    report = tmp_path / "report.json"
    assert main(["track-eval", str(out), "--ground-truth-detections", "--out", str(report),
                 "--no-progress"]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["num_switches"] == 0 and metrics["mota"] > 90, metrics
    assert "MOTA" in capsys.readouterr().out
