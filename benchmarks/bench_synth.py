"""Synthetic data generation speed: images per second of ``densepose synth``.

For 320x240 and 640x480 images with 1, 2 and 4 persons, two figures:
- per image, one process (one core): the median time of each stage (skinning with anny,
  rasterising + labels, shading + background + degradations, annotation, image encoding)
  and of the whole image;
- throughput, all cores: images per second of the writer's own per-image job run by a
  pool of one process per core (started and warmed beforehand, so start-up is excluded),
  median over repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from densepose_ros.synth import body
from densepose_ros.synth import scene as scene_mod
from densepose_ros.synth.scene import SceneConfig, render_scene
from densepose_ros.synth.writer import WriterConfig, init_worker, person_annotation, render_job

CASES = ((320, 240, 1), (320, 240, 2), (320, 240, 4), (640, 480, 1), (640, 480, 4))


def _config(width: int, height: int, persons: int) -> WriterConfig:
    scene = dataclasses.replace(SceneConfig(), width=width, height=height,
                                persons=(persons, persons))
    return WriterConfig(seed=1, preview_images=0, scene=scene)


def stage_times(config: WriterConfig, images: int) -> dict[str, float]:
    """Median milliseconds per stage and in total, one process."""
    timings: dict[str, list[float]] = {k: [] for k in
                                       ("skinning", "raster", "total", "annotate", "encode")}
    pose, raster = body.pose_bodies, scene_mod.rasterize_people

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            timings[name][-1] += (time.perf_counter() - t) * 1000
            return out
        return wrapper

    scene_mod.pose_bodies = timed("skinning", pose)
    scene_mod.rasterize_people = timed("raster", raster)
    try:
        rng = np.random.default_rng(0)
        for i in range(images + 2):  # two warm-up images
            for k in timings:
                timings[k].append(0.0)
            t0 = time.perf_counter()
            s = render_scene(np.random.default_rng([config.seed, i]), config.scene)
            t1 = time.perf_counter()
            for k in range(s.num_persons):
                person_annotation(s, k, config, rng)
            t2 = time.perf_counter()
            cv2.imencode(".jpg", s.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
            t3 = time.perf_counter()
            timings["annotate"][-1] = (t2 - t1) * 1000
            timings["encode"][-1] = (t3 - t2) * 1000
            timings["total"][-1] = (t3 - t0) * 1000
    finally:
        scene_mod.pose_bodies, scene_mod.rasterize_people = pose, raster
    out = {k: statistics.median(v[2:]) for k, v in timings.items()}
    out["shading_etc"] = out["total"] - out["skinning"] - out["raster"] - out["annotate"] \
        - out["encode"]
    return out


def _warm(_: int) -> int:
    render_scene(0, dataclasses.replace(SceneConfig(), width=64, height=48))
    return os.getpid()


def throughput(pool, config: WriterConfig, images: int, repeats: int, out_dir: Path) -> float:
    """Median images/s of the writer's per-image job over ``repeats`` batches."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rates = []
    for r in range(repeats):
        jobs = [(r * images + i, config, out_dir) for i in range(images)]
        t = time.perf_counter()
        list(pool.imap_unordered(render_job, jobs, chunksize=1))
        rates.append(images / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--images", type=int, default=16, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, no GPU used"
    print(f"machine: {machine}")
    init_worker()
    _warm(0)
    ctx = multiprocessing.get_context("fork")
    results = []
    with ctx.Pool(args.workers, initializer=init_worker) as pool, \
            tempfile.TemporaryDirectory() as tmp:
        pool.map(_warm, range(args.workers))
        print(f"{'size':>8} {'persons':>7} | ms/img 1 core: skin raster shade annot enc total"
              f" | img/s ({args.workers} procs)")
        for w, h, persons in CASES:
            config = _config(w, h, persons)
            stages = stage_times(config, args.images)
            rate = throughput(pool, config, args.images, args.repeats, Path(tmp))
            results.append({"width": w, "height": h, "persons": persons,
                            "stage_ms_median_1proc": stages, "images_per_s": rate,
                            "workers": args.workers})
            print(f"{w}x{h:<4} {persons:>7} | {stages['skinning']:13.1f} {stages['raster']:6.1f}"
                  f" {stages['shading_etc']:5.1f} {stages['annotate']:6.1f}"
                  f" {stages['encode']:4.1f} {stages['total']:6.1f} | {rate:6.1f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synth.json").write_text(json.dumps({"machine": machine, "results": results},
                                                    indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
