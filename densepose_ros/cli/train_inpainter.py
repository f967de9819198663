"""``densepose train-inpainter``: the paper's teacher for sparse annotations.

    densepose train-inpainter --data data/annotations.json --out inpainter.pth --steps 1500

Trains the small fully convolutional network of ``densepose_ros/training/inpaint.py`` on the
annotated points and part masks; ``densepose label --inpaint`` then densifies the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densepose_ros.cli.common import user_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="DensePose-COCO annotations with dp points and dp_masks")
    parser.add_argument("--images", type=Path, default=None,
                        help="images folder (default: images/ next to the JSON)")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write")
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--batch", type=int, default=32, help="persons per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.training.inpaint import load_person_crops, save_inpainter, train_inpainter

    try:
        crops = load_person_crops(args.data, args.images)
        model, losses = train_inpainter(crops, args.steps, args.batch, seed=args.seed,
                                        progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        return user_error("train-inpainter", error)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_inpainter(model, args.out)
    tail = losses[-50:]
    print(f"trained on {len(crops)} persons, {args.steps} steps; loss {losses[0]:.3f} -> "
          f"{sum(tail) / len(tail):.3f}; wrote {args.out}")
    return 0
