"""``densepose fetch``: download, verify and import model-zoo weights into the cache now.

    densepose fetch R_50_FPN_s1x R_101_FPN_s1x

For robots without internet at run time: fetch while connected, then pass the name (or the
printed path) as the weights. ``densepose models`` lists the names.
"""

from __future__ import annotations

import argparse

from densepose_ros.cli.common import user_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="model-zoo names (short or detectron2 name, see `densepose models`)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no download progress bar")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.inference.model_zoo import ModelZooError, fetch, find_entry

    try:  # every name is checked before anything is downloaded
        for name in args.names:
            find_entry(name)
    except ValueError as error:
        return user_error("fetch", error)
    for name in args.names:
        try:
            path = fetch(name, progress=not args.no_progress)
        except (ModelZooError, OSError) as error:  # OSError: e.g. an unwritable cache
            return user_error("fetch", error)
        print(path)
    return 0
