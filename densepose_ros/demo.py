"""``make demo``: the package's main job on real input.

Plays a few seconds of OpenCV's ``vtest.avi`` (a real street scene with pedestrians) as a
rosbag2 of ``sensor_msgs/Image`` and reports what it did. Stages that are not built yet say
so plainly instead of pretending.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import time
from pathlib import Path

from densepose_ros import bag_io, paths

DEMO_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--seconds", type=float, default=DEMO_SECONDS)
    args = parser.parse_args(argv)

    data_dir = paths.sample_data_dir()
    if data_dir is None or not (data_dir / "vtest.avi").is_file():
        print("demo: sample video missing; run `make setup` (scripts/fetch_sample_data.sh)")
        return 1
    video = data_dir / "vtest.avi"
    args.out.mkdir(parents=True, exist_ok=True)
    input_bag = args.out / "input_bag"
    if input_bag.exists():
        shutil.rmtree(input_bag)
    start = time.monotonic()
    frames = bag_io.video_to_image_bag(video, input_bag, max_frames=int(args.seconds * 10))
    print(f"demo: wrote {frames} frames of {video.name} (768x576, 10 fps) as a rosbag2 of "
          f"sensor_msgs/Image to {input_bag} in {time.monotonic() - start:.1f} s")

    if importlib.util.find_spec("densepose_ros.node") is None:
        print("demo: NOT BUILT YET: the DensePose node (issue 4) and the model (issue 3); "
              "this demo stops after preparing the input bag.")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
