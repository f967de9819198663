"""``densepose synth``: render synthetic DensePose-COCO data from the Anny body model."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from densepose_ros.cli.common import size_wxh, user_error
from densepose_ros.synth.scene import DOMAINS, SceneConfig
from densepose_ros.synth.sequence import SequenceConfig
from densepose_ros.synth.writer import WriterConfig


def _persons(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a..b or n, e.g. 1..3, got {text!r}")
    lo, hi = int(match[1]), int(match[2] or match[1])
    if lo > hi:
        raise argparse.ArgumentTypeError(f"empty range {text!r}")
    return lo, hi


def add_arguments(parser: argparse.ArgumentParser) -> None:
    w, s = WriterConfig(), SceneConfig()
    parser.add_argument("--num", type=int, default=w.num_images, help="number of images")
    parser.add_argument("--seed", type=int, default=w.seed, help="dataset seed (deterministic)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--size", type=size_wxh, default=(s.width, s.height), metavar="WxH",
                        help=f"image size (default {s.width}x{s.height})")
    parser.add_argument("--persons", type=_persons, default=s.persons, metavar="a..b",
                        help=f"people per image (default {s.persons[0]}..{s.persons[1]})")
    parser.add_argument("--workers", type=int, default=w.workers,
                        help="worker processes (0: one per CPU core)")
    parser.add_argument("--format", choices=("jpg", "png"), default=w.image_format)
    parser.add_argument("--save-maps", action="store_true",
                        help="also write the exact label maps to DIR/maps/*.npz")
    parser.add_argument("--preview", type=int, default=w.preview_images,
                        help="images shown in DIR/preview.png (0: none)")
    parser.add_argument("--sequence", action="store_true",
                        help="render --num clips of people walking, turning and crossing, "
                             "with ground-truth identities (tracking evaluation)")
    parser.add_argument("--frames", type=int, default=SequenceConfig().frames,
                        help="with --sequence: frames per clip")
    parser.add_argument("--domain", choices=tuple(DOMAINS), default="default",
                        help="scene preset: 'robot' is a low, upward-looking wide-angle "
                             "camera in dim warm light (densepose_ros/synth/scene.py)")
    parser.add_argument("--bag", action="store_true",
                        help="also write the images, in order at 10 Hz, as a rosbag2 "
                             "(DIR/bag, sensor_msgs/Image on /camera/color/image_raw): a "
                             "recording to run `densepose infer`/`label` on")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.synth.writer import write_dataset

    if args.sequence:
        return _sequences(args)
    scene = dataclasses.replace(SceneConfig(), width=args.size[0], height=args.size[1],
                                persons=args.persons, **DOMAINS[args.domain])
    config = WriterConfig(num_images=args.num, seed=args.seed, workers=args.workers,
                          image_format=args.format, save_maps=args.save_maps,
                          preview_images=args.preview, scene=scene)
    coco = write_dataset(args.out, config, progress=not args.no_progress)
    with_dp = sum("dp_I" in a for a in coco["annotations"])
    print(f"wrote {len(coco['images'])} images, {len(coco['annotations'])} people "
          f"({with_dp} with DensePose points) to {args.out}")
    if args.bag:
        _write_bag(args.out, coco)
    return 0


def _write_bag(out: Path, coco: dict) -> None:
    import cv2

    from densepose_ros.io.bag_io import BagWriter, image_to_cdr

    start, period = 1_700_000_000_000_000_000, 100_000_000
    with BagWriter(out / "bag", "mcap") as writer:
        for k, image in enumerate(coco["images"]):
            frame = cv2.imread(str(out / "images" / image["file_name"]), cv2.IMREAD_COLOR)
            stamp = start + k * period
            writer.write("/camera/color/image_raw", "sensor_msgs/msg/Image", stamp,
                         image_to_cdr(frame, stamp, "camera_color_optical_frame"))
    print(f"wrote {len(coco['images'])} frames to the bag {out / 'bag'}")


def _sequences(args: argparse.Namespace) -> int:
    from densepose_ros.synth.sequence import write_sequences

    if args.frames < 1 or args.num < 1:
        return user_error("synth", "--num and --frames must be at least 1")
    base = SequenceConfig()
    persons = args.persons if args.persons != SceneConfig().persons else base.persons
    config = dataclasses.replace(
        base, frames=args.frames, persons=persons,
        scene=dataclasses.replace(base.scene, width=args.size[0], height=args.size[1]))
    clips = write_sequences(args.out, args.num, args.seed, config, workers=args.workers,
                            progress=not args.no_progress)
    print(f"wrote {len(clips)} clips of {args.frames} frames to {args.out}")
    return 0
