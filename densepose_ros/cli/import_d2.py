"""``densepose import-d2``: convert a detectron2 DensePose checkpoint to our weights format.

    densepose import-d2 model_final_d366fa.pkl --config R_50_FPN_s1x_legacy -o r50_legacy.pth

Every key of the checkpoint must be used and every shape must match the configuration; the
error message names each missing or unexpected key and each wrong shape.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densepose_ros.cli.common import user_error
from densepose_ros.modeling.config import CONFIG_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path,
                        help="detectron2 model-zoo .pkl or detectron2 .pth checkpoint")
    parser.add_argument("--config", required=True, choices=CONFIG_NAMES,
                        help="configuration the checkpoint was trained with")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="weights file to write (our format, carries its configuration)")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.inference.checkpoint import import_detectron2, save_weights
    from densepose_ros.modeling import build_model, get_config

    try:
        state = import_detectron2(args.checkpoint, args.config)
    except (FileNotFoundError, ValueError) as error:
        return user_error("import-d2", error)
    cfg = get_config(args.config)
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)
    save_weights(args.output, model, cfg, metadata={
        "imported_from": "detectron2", "source_file": args.checkpoint.name,
    })
    count = sum(t.numel() for t in state.values())
    print(f"imported {len(state)} tensors ({count / 1e6:.1f} M values) for {cfg.name} "
          f"-> {args.output}")
    return 0
