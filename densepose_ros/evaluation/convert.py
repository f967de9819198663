"""Convert DensePose's SMPL evaluation files into the surface ``.npz`` of ``--geodesics``.

    python -m densepose_ros.evaluation.convert SMPL_subdiv.mat SMPL_SUBDIV_TRANSFORM.mat \
        Pdist_matrix.pkl smpl_geodesics.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densepose_ros.evaluation.surface import convert_densepose_eval_files


def main(argv: list[str] | None = None) -> int:
    """``python -m densepose_ros.evaluation.convert SUBDIV TRANSFORM PDIST OUT``."""
    parser = argparse.ArgumentParser(
        prog="python -m densepose_ros.evaluation.convert",
        description="convert DensePose's SMPL evaluation files into a surface .npz")
    parser.add_argument("subdiv_mat", help="SMPL_subdiv.mat")
    parser.add_argument("transform_mat", help="SMPL_SUBDIV_TRANSFORM.mat")
    parser.add_argument("pdist_pickle", help="Pdist_matrix.pkl")
    parser.add_argument("out_npz", help="output .npz")
    args = parser.parse_args(argv)
    for name in ("subdiv_mat", "transform_mat", "pdist_pickle"):
        if not Path(getattr(args, name)).is_file():
            parser.error(f"file not found: {getattr(args, name)}")
    out = convert_densepose_eval_files(args.subdiv_mat, args.transform_mat, args.pdist_pickle,
                                       args.out_npz)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
