"""The ``densepose`` command-line tool: one executable, one verb per job.

Each verb lives in its own module under ``densepose_ros.cli`` exposing
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only
when their verb is used, so ``densepose --help`` stays fast and a verb whose
optional dependencies are missing does not break the others. Exit codes, the
same for every verb (``cli.common``): 0 success, 2 the user's input was wrong,
1 the tool failed (an unexpected error prints its trace).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from densepose_ros.cli.common import INTERNAL_ERROR, USER_ERROR

# verb -> (module under densepose_ros.cli, one-line help). The single place verbs are listed.
VERBS: dict[str, tuple[str, str]] = {
    "import-d2": ("import_d2", "convert detectron2 model-zoo weights (.pkl/.pth) to our format"),
    "infer": ("infer", "run DensePose on images, folders, videos or bags; overlays, IUV, JSON, "
                       "bags of the node's messages"),
    "label": ("label", "a teacher's pseudo-labels for bags, videos, images: training data"),
    "bench": ("bench", "per-stage CPU/GPU timings of the model"),
    "export": ("export", "export a model to ONNX"),
    "build-engine": ("build_engine", "build a TensorRT engine from an ONNX file (GPU only)"),
    "synth": ("synth", "render synthetic DensePose training data from the Anny body model"),
    "train": ("train", "train DensePose R-CNN"),
    "train-inpainter": ("train_inpainter", "train the teacher that densifies sparse annotations"),
    "eval": ("eval", "evaluate weights on a DensePose-COCO style annotation file"),
    "track-eval": ("track_eval", "MOTA / IDF1 / ID switches of the tracker on synthetic clips"),
    "models": ("models", "list the DensePose model zoo (metrics, cached or not)"),
    "fetch": ("fetch", "download and import model-zoo weights into the cache"),
}


def _usage() -> str:
    lines = ["usage: densepose <verb> [options]   (densepose <verb> --help for details)"]
    lines += ["", "verbs:"]
    lines += [f"  {verb:<13} {help_text}" for verb, (_, help_text) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else USER_ERROR
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"densepose: unknown verb '{verb}'\n\n{_usage()}", file=sys.stderr)
        return USER_ERROR
    module_name, help_text = VERBS[verb]
    module = importlib.import_module(f"densepose_ros.cli.{module_name}")
    parser = argparse.ArgumentParser(prog=f"densepose {verb}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(rest)  # argparse exits with 2 on a bad argument
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"densepose {verb}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not the user's input: show where
        traceback.print_exc()
        print(f"densepose {verb}: internal error (the trace above says where)",
              file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
