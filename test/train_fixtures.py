"""Shared inputs of the training tests: a tiny synthetic set and a tiny training config.

The synthetic set is rendered once per pytest session (into the session's base temporary
directory, so every test module finds the same copy) with one person per image at 192x144,
small enough for a from-scratch model to overfit in a couple of hundred CPU steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from densepose_ros.training.config import DatasetEntry, SolverConfig, TrainConfig

SYNTH_IMAGES = 6
SYNTH_SIZE = (192, 144)


def tiny_synth_set(tmp_path_factory) -> Path:
    """Directory with annotations.json and images/ of SYNTH_IMAGES rendered images."""
    root = tmp_path_factory.getbasetemp() / "train_synth"
    if (root / "annotations.json").is_file():
        return root
    from densepose_ros.synth.scene import SceneConfig
    from densepose_ros.synth.writer import WriterConfig, write_dataset

    scene = dataclasses.replace(SceneConfig(), width=SYNTH_SIZE[0], height=SYNTH_SIZE[1],
                                persons=(1, 1), distance_m=(2.5, 3.5))
    partial = root.with_name("train_synth.partial")
    write_dataset(partial, WriterConfig(num_images=SYNTH_IMAGES, seed=3, workers=1,
                                        preview_images=0, scene=scene), progress=False)
    partial.rename(root)
    return root


def tiny_train_config(data: Path, output_dir: Path, **changes) -> TrainConfig:
    """Overfit-the-set settings: native size, no flips or jitter, AdamW, short warm-up."""
    cfg = TrainConfig(
        model="R_18_FPN_tiny",
        datasets=[DatasetEntry(annotations=str(data / "annotations.json"), symmetry="anny")],
        solver=SolverConfig(optimizer="adamw", base_lr=2e-3, max_iter=150, warmup_iters=10,
                            schedule="cosine"),
        batch_size=2, num_workers=0, seed=1, device="cpu", output_dir=str(output_dir),
        checkpoint_period=50, log_period=1, preview_period=0,
    )
    cfg.augmentation = dataclasses.replace(cfg.augmentation, min_sizes=(SYNTH_SIZE[1],),
                                           test_min_size=SYNTH_SIZE[1], flip_probability=0.0,
                                           jitter_probability=0.0)
    return dataclasses.replace(cfg, **changes)
