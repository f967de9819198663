"""Synthetic clips for tracking: people walking across the view, turning and crossing each
other, with the identity of every visible pixel known.

A clip keeps one camera, background, light and look per person (the scene's appearance
draws come from one seed, replayed every frame); each person walks at their own speed from
one side of the view towards the other (so paths cross), with a walking gait, and may turn
once. ``render_clip`` gives the frames; ``ground_truth`` their per-frame identities and
boxes (the visible pixels of each person). Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from densepose_ros.synth.body import ACTIVITIES, BodyConfig, BodySample, pose_bodies, sample_body
from densepose_ros.synth.scene import (
    RenderedScene,
    SceneConfig,
    _sample_camera,
    render_people,
    stand_people_at,
)

WALKING_ONLY = tuple(1.0 if a == "walking" else 0.0 for a in ACTIVITIES)


@dataclass(frozen=True)
class SequenceConfig:
    """Clip sampling; each default lives here once.

    frames, fps: length and frame rate of a clip. persons: (min, max) people per clip.
    speed_mps: walking speed. turn_prob: chance a person turns once (by turn_deg) mid-clip.
    min_visible_px: a person with fewer visible pixels is not in that frame's ground truth.
    scene: the look of the scene (no occluding furniture: people hide each other).
    """

    frames: int = 40
    fps: float = 10.0
    persons: tuple[int, int] = (2, 4)
    speed_mps: tuple[float, float] = (0.8, 1.6)
    turn_prob: float = 0.5
    turn_deg: tuple[float, float] = (30.0, 90.0)
    min_visible_px: int = 60
    scene: SceneConfig = field(default_factory=lambda: SceneConfig(
        occluder_prob=0.0, distance_m=(3.0, 7.0),
        body=BodyConfig(activity_weights=WALKING_ONLY)))


@dataclass
class _Walker:
    """One person's path: start (x, y) on the ground, heading (radians, 0 = away from the
    camera along +y), speed, when and by how much they turn, gait phase and stride."""

    sample: BodySample
    start: np.ndarray
    heading: float
    speed: float
    turn_frame: int
    turn: float
    phase: float
    stride_deg: float

    def position(self, t: float, frame: int, fps: float) -> tuple[np.ndarray, float]:
        """Ground position and heading at time t (s) / frame."""
        before = min(frame, self.turn_frame) / fps
        after = max(0, frame - self.turn_frame) / fps
        first = np.array([np.sin(self.heading), np.cos(self.heading)])
        heading = self.heading + (self.turn if frame > self.turn_frame else 0.0)
        second = np.array([np.sin(heading), np.cos(heading)])
        return self.start + self.speed * (before * first + after * second), heading

    def pose(self, t: float) -> BodySample:
        """The walking pose at time t: legs and arms swing with the gait (1 stride/s per
        m/s of speed)."""
        swing = np.sin(2 * np.pi * 0.9 * self.speed * t + self.phase)
        angles = {k: v.copy() for k, v in self.sample.joint_angles_deg.items()}
        for side, sign in (("L", 1.0), ("R", -1.0)):
            s = sign * swing * self.stride_deg
            angles[f"upperleg01.{side}"][0] = -s - 3.0
            angles[f"lowerleg01.{side}"][0] = 10.0 + max(0.0, s) * 1.2
            angles[f"upperarm01.{side}"][0] = 0.7 * s
        return dataclasses.replace(self.sample, joint_angles_deg=angles)


def _walkers(rng: np.random.Generator, config: SequenceConfig, hfov: float) -> list[_Walker]:
    walkers = []
    count = int(rng.integers(config.persons[0], config.persons[1] + 1))
    for k in range(count):
        depth = rng.uniform(*config.scene.distance_m)
        half_width = depth * np.tan(hfov / 2) * 0.9
        side = -1.0 if k % 2 == 0 else 1.0  # alternate sides: paths cross
        start = np.array([side * half_width * rng.uniform(0.5, 1.0), depth])
        # Towards the other side, a little towards or away from the camera.
        heading = -side * np.pi / 2 + rng.uniform(-0.35, 0.35)
        turn_frame = int(rng.integers(config.frames // 4, 3 * config.frames // 4 + 1))
        turn = (np.deg2rad(rng.uniform(*config.turn_deg)) * rng.choice([-1, 1])
                if rng.random() < config.turn_prob else 0.0)
        walkers.append(_Walker(
            sample=sample_body(rng, config.scene.body), start=start, heading=heading,
            speed=rng.uniform(*config.speed_mps), turn_frame=turn_frame, turn=turn,
            phase=rng.uniform(0, 2 * np.pi), stride_deg=rng.uniform(15, 30)))
    return walkers


def render_clip(seed: int, config: SequenceConfig = SequenceConfig()) -> list[RenderedScene]:
    """The frames of one clip; person k of every frame is walker k (``instance == k + 1``)."""
    rng = np.random.default_rng(seed)
    hfov, camera = _sample_camera(rng, config.scene)
    walkers = _walkers(rng, config, hfov)
    look_seed = int(rng.integers(2**32))
    frames = []
    for frame in range(config.frames):
        t = frame / config.fps
        placed = [w.position(t, frame, config.fps) for w in walkers]
        positions = [p for p, _ in placed]
        # A heading of 0 walks away from the camera: the body (facing -y) turns by pi.
        yaws = [np.pi - heading for _, heading in placed]
        bodies = pose_bodies([w.pose(t) for w in walkers])
        people = stand_people_at(camera, positions, yaws, bodies)
        frames.append(render_people(np.random.default_rng(look_seed), config.scene, camera,
                                    positions, people, ["walking"] * len(walkers)))
    return frames


def ground_truth(frames: list[RenderedScene], min_visible_px: int
                 ) -> list[list[tuple[int, list[float]]]]:
    """Per frame the visible people: (identity >= 1, box [x1, y1, x2, y2] of their visible
    pixels, end exclusive), people with fewer than ``min_visible_px`` pixels left out."""
    out = []
    for scene in frames:
        persons = []
        for k in range(scene.num_persons):
            rows, cols = np.nonzero(scene.instance == k + 1)
            if len(rows) >= min_visible_px:
                persons.append((k + 1, [float(cols.min()), float(rows.min()),
                                        float(cols.max() + 1), float(rows.max() + 1)]))
        out.append(persons)
    return out


def _clip_job(args: tuple[int, int, SequenceConfig, Path]) -> int:
    index, seed, config, out_dir = args
    import cv2

    clip_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    frames = render_clip(clip_seed, config)
    folder = out_dir / f"clip_{index:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    truth = ground_truth(frames, config.min_visible_px)
    records = []
    for number, (scene, persons) in enumerate(zip(frames, truth, strict=True)):
        name = f"{number:06d}.jpg"
        cv2.imwrite(str(folder / name), scene.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        records.append({"file": name,
                        "persons": [{"id": pid, "box": box} for pid, box in persons]})
    (folder / "gt.json").write_text(json.dumps({
        "fps": config.fps, "width": config.scene.width, "height": config.scene.height,
        "frames": records}))
    return len(frames)


def write_sequences(out_dir: Path, clips: int, seed: int, config: SequenceConfig,
                    workers: int = 0, progress: bool = True) -> list[Path]:
    """Render ``clips`` clips into ``out_dir/clip_NNNN/`` (frames ``NNNNNN.jpg`` and
    ``gt.json``: fps, size, per frame the visible people's ids and boxes). Output depends
    only on the seed and config; one process per core."""
    import os

    from tqdm import tqdm

    from densepose_ros.synth.writer import map_in_workers

    out_dir = Path(out_dir)
    jobs = [(i, seed, config, out_dir) for i in range(clips)]
    workers = min(workers or os.cpu_count() or 1, max(1, clips))
    bar = tqdm(total=clips * config.frames, desc="synth clips", unit="frame",
               disable=not progress)
    for frames in map_in_workers(_clip_job, jobs, workers):
        bar.update(frames)
    bar.close()
    return [out_dir / f"clip_{i:04d}" for i in range(clips)]


def read_clip(folder: Path) -> dict:
    """A clip written by ``write_sequences``: its gt.json with ``folder`` added."""
    folder = Path(folder)
    gt = folder / "gt.json"
    if not gt.is_file():
        raise FileNotFoundError(f"{folder}: no gt.json (not a clip of `densepose synth "
                                "--sequence`)")
    data = json.loads(gt.read_text())
    data["folder"] = folder
    return data
