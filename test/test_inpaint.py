"""The inpainting teacher: it learns dense charts from sparse points and a mask (a toy rule
it can only learn from the points), and `densepose label --inpaint` densifies a real
DensePose-COCO file into data the distillation loader reads."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from densepose_ros.training.inpaint import (
    CROP,
    PersonCrop,
    inpaint_person,
    person_inputs,
    train_inpainter,
)

from node_fixtures import REPO_ROOT


def toy_person(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list, PersonCrop]:
    """A 120x100 grey image with an ellipse "person" in the box [20, 10, 80, 110], of a
    random width; its left half is reddish, its right half bluish (appearance, as body
    parts have). The rule: left half chart 3, right half chart 4, U = the horizontal
    position across the box, V = the vertical one. 30 sparse points annotate it."""
    box = [20.0, 10.0, 80.0, 110.0]
    yy, xx = np.mgrid[0:256, 0:256] / 256
    half_width = rng.uniform(0.25, 0.48)
    mask256 = ((xx - 0.5) / half_width) ** 2 + ((yy - 0.5) / 0.48) ** 2 < 1
    image = np.full((120, 100, 3), 128, np.uint8)
    rows, cols = np.mgrid[10:110, 20:80]
    inside = mask256[((rows - 10) * 2.56).astype(int), ((cols - 20) * 256 / 60).astype(int)]
    colour = np.where((cols < 50)[..., None], [60, 60, 200], [200, 60, 60])  # BGR
    image[10:110, 20:80][inside] = colour[inside]
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    inputs, mask = person_inputs(image, box, mask256)
    cells = np.argwhere(mask)
    pick = cells[rng.choice(len(cells), 30, replace=False)]
    part = np.where(pick[:, 1] < CROP // 2, 3, 4).astype(np.int64)
    uv = np.stack([(pick[:, 1] + 0.5) / CROP, (pick[:, 0] + 0.5) / CROP],
                  axis=1).astype(np.float32)
    return image, mask256, box, PersonCrop(inputs, mask, pick.astype(np.int64), part, uv)


def test_teacher_inpaints_a_toy_rule_from_sparse_points():
    rng = np.random.default_rng(0)
    people = [toy_person(rng) for _ in range(12)]
    model, losses = train_inpainter([p[3] for p in people], steps=150, batch=8, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    image, mask256, box, _ = toy_person(np.random.default_rng(99))  # unseen
    part, u, v, probability = inpaint_person(model, image, box, mask256)
    cells = np.argwhere(part > 0)
    _, mask = person_inputs(image, box, mask256)
    assert (part > 0).sum() == mask.sum()  # every mask cell gets a chart, nothing outside
    expected = np.where(cells[:, 1] < CROP // 2, 3, 4)
    agreement = (part[cells[:, 0], cells[:, 1]] == expected).mean()
    u_error = np.abs(u[cells[:, 0], cells[:, 1]] - (cells[:, 1] + 0.5) / CROP).mean()
    # 30 points per person; the teacher fills in the other cells of the mask
    assert agreement > 0.85, agreement
    assert u_error < 0.1, u_error
    assert probability[part > 0].min() > 0


def test_label_inpaint_densifies_a_densepose_coco_file(tmp_path):
    from densepose_ros.data.dataset import DatasetSpec
    from densepose_ros.data.distill import DistillDataset

    python = [sys.executable, "-m", "densepose_ros"]
    run = lambda *args: subprocess.run([*python, *args], capture_output=True, text=True,  # noqa: E731
                                       cwd=REPO_ROOT, timeout=600)
    done = run("synth", "--num", "3", "--seed", "5", "--out", str(tmp_path / "data"),
               "--size", "240x180", "--workers", "1", "--no-progress", "--preview", "0")
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data" / "annotations.json"
    done = run("train-inpainter", "--data", str(data), "--out", str(tmp_path / "t.pth"),
               "--steps", "20", "--no-progress")
    assert done.returncode == 0, done.stderr
    done = run("label", str(data), "--inpaint", "--teacher", str(tmp_path / "t.pth"),
               "--out", str(tmp_path / "dense"), "--no-progress")
    assert done.returncode == 0, done.stderr
    dense = json.loads((tmp_path / "dense" / "annotations.json").read_text())
    sparse = json.loads(data.read_text())
    with_points = [a for a in sparse["annotations"] if "dp_masks" in a]
    assert sum("map_instance" in a for a in dense["annotations"]) == len(with_points)
    # the annotated points are kept as they were
    assert [a.get("dp_I") for a in dense["annotations"]] == \
        [a.get("dp_I") for a in sparse["annotations"]]
    # every pixel (max_points 0) to count them
    dataset = DistillDataset(DatasetSpec(tmp_path / "dense" / "annotations.json",
                                         kind="distill", symmetry="anny", max_points=0))
    targets = [i.dense for k in range(len(dataset)) for i in dataset.load(k).instances
               if i.dense is not None]
    points = sum(len(a["dp_I"]) for a in with_points)
    assert sum(len(t.part) for t in targets) > 5 * points
    # a teacher file that is not one: a clear error
    (tmp_path / "bad.pth").write_bytes(b"nope")
    done = run("label", str(data), "--inpaint", "--teacher", str(tmp_path / "bad.pth"),
               "--out", str(tmp_path / "o"), "--no-progress")
    assert done.returncode == 2 and "bad.pth" in done.stderr
