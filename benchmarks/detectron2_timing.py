"""detectron2's own DensePose R-CNN timed on the parity image (run with a Python that has
detectron2 built from source; never imported by this package). Used by
``side_by_side_detectron2.py``; prints one JSON line.

    PYTHON_WITH_D2 benchmarks/detectron2_timing.py --d2-src DIR --weights W.pkl [--repeats 5]
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--d2-src", required=True, help="detectron2 source tree")
    parser.add_argument("--weights", required=True, help="model-zoo layout .pkl")
    parser.add_argument("--image", required=True, help="BGR image at model resolution")
    parser.add_argument("--config", default="densepose_rcnn_R_50_FPN_s1x_legacy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.d2_src, "projects", "DensePose"))
    import cv2
    import numpy as np
    import torch
    from densepose import add_densepose_config
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    torch.set_num_threads(args.threads)
    cfg = get_cfg()
    add_densepose_config(cfg)
    cfg.merge_from_file(os.path.join(args.d2_src, "projects/DensePose/configs",
                                     args.config + ".yaml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    cfg.freeze()
    model = build_model(cfg)
    checkpointer = DetectionCheckpointer(model)
    incompatible = checkpointer._load_model(checkpointer._load_file(args.weights))
    if incompatible.missing_keys or incompatible.unexpected_keys or \
            incompatible.incorrect_shapes:
        raise SystemExit(f"checkpoint does not fit the model: {incompatible}")
    model.eval()
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)).astype("float32"))
    inputs = [{"image": tensor, "height": height, "width": width}]
    times = []
    with torch.no_grad():
        output = model.inference(inputs, do_postprocess=False)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            output = model.inference(inputs, do_postprocess=False)
            times.append(time.perf_counter() - start)
    print(json.dumps({"times_s": times, "median_s": statistics.median(times),
                      "detections": len(output[0]), "threads": args.threads}))


if __name__ == "__main__":
    main()
