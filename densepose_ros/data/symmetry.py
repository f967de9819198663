"""Left/right symmetry of the DensePose charts, for horizontal-flip augmentation.

A horizontal flip shows the mirror image of the body: a point on the left hand becomes a
point on the right hand, and its chart coordinates (U, V) move to the mirrored position on
the mirrored chart. The chart swap is fixed by the DensePose chart list; where (U, V) go is
a property of the chart layout, hence pluggable (``ChartSymmetry``):

- ``LookupTableSymmetry``: per source chart a 256 x 256 lookup of the mirrored U and V,
  indexed ``[int(V * 255), int(U * 255)]``, as in DensePose's ``UV_symmetry_transforms.mat``
  (SMPL-based DensePose-COCO; the user supplies the file). Accepted files: that ``.mat``
  (cell arrays ``U_transforms``, ``V_transforms`` of 24 matrices) or an ``.npz`` with
  ``U_transforms`` and ``V_transforms`` of shape (24, 256, 256).
- ``AnnySymmetry``: the Anny charts of the synthetic data (their own mirror map).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from densepose_ros.data.coco import NUM_CHARTS

# Chart of the mirror image, index 0..24. The torso charts (1, 2) are each symmetric; every
# other pair (3,4) .. (23,24) is a left/right pair (hands, feet, legs, arms, head sides).
CHART_MIRROR = np.array([0, 1, 2] + [c for k in range(3, NUM_CHARTS + 1, 2) for c in (k + 1, k)],
                        dtype=np.int64)
# Coarse part of the mirror image, index 0..14 (torso and head stay; sides swap), in the
# dp_masks order: torso, right hand, left hand, left foot, right foot, upper leg right,
# upper leg left, lower leg right, lower leg left, upper arm left, upper arm right, lower
# arm left, lower arm right, head.
COARSE_MIRROR = np.array([0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14], dtype=np.int64)
# COCO keypoint of the mirror image: nose, then (left, right) pairs of eyes, ears,
# shoulders, elbows, wrists, hips, knees, ankles.
KEYPOINT_MIRROR = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15],
                           dtype=np.int64)


@runtime_checkable
class ChartSymmetry(Protocol):
    """Maps surface points (I, U, V) to their mirror images, elementwise."""

    def mirror(self, part: np.ndarray, u: np.ndarray,
               v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[P] mirrored chart (0 stays 0), [P] U, [P] V."""


class LookupTableSymmetry:
    """Mirror through per-chart 256 x 256 tables of U and V (DensePose's file layout).

    Attributes:
        u_tables: [24, 256, 256] mirrored U of source chart c+1 at [int(255 V), int(255 U)].
        v_tables: [24, 256, 256] mirrored V, same indexing.
    """

    def __init__(self, u_tables: np.ndarray, v_tables: np.ndarray) -> None:
        self.u_tables = np.asarray(u_tables, dtype=np.float32)
        self.v_tables = np.asarray(v_tables, dtype=np.float32)
        shape = (NUM_CHARTS, 256, 256)
        if self.u_tables.shape != shape or self.v_tables.shape != shape:
            raise ValueError(f"symmetry tables must be {shape}, got {self.u_tables.shape} "
                             f"and {self.v_tables.shape}")

    def mirror(self, part, u, v):
        part = np.asarray(part, dtype=np.int64)
        u_loc = np.clip((np.asarray(u, np.float64) * 255).astype(np.int64), 0, 255)
        v_loc = np.clip((np.asarray(v, np.float64) * 255).astype(np.int64), 0, 255)
        table = np.clip(part - 1, 0, NUM_CHARTS - 1)
        foreground = part > 0
        new_u = np.where(foreground, self.u_tables[table, v_loc, u_loc], u)
        new_v = np.where(foreground, self.v_tables[table, v_loc, u_loc], v)
        return (CHART_MIRROR[part], new_u.astype(np.float32), new_v.astype(np.float32))

    @classmethod
    def from_file(cls, path: Path | str) -> LookupTableSymmetry:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"symmetry file not found: {path}")
        if path.suffix == ".mat":
            from scipy.io import loadmat

            data = loadmat(str(path))
            tables = []
            for key in ("U_transforms", "V_transforms"):
                if key not in data:
                    raise ValueError(f"{path}: missing '{key}'")
                cells = np.asarray(data[key], dtype=object).reshape(-1)
                tables.append(np.stack([np.asarray(c, dtype=np.float32) for c in cells]))
            return cls(*tables)
        with np.load(path) as data:
            missing = [k for k in ("U_transforms", "V_transforms") if k not in data]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing}")
            return cls(data["U_transforms"], data["V_transforms"])


class AnnySymmetry:
    """The mirror map of the Anny charts (synthetic data), from the synth package."""

    def __init__(self) -> None:
        from densepose_ros.synth.charts import mirror_iuv

        self._mirror = mirror_iuv

    def mirror(self, part, u, v):
        new_part, new_u, new_v = self._mirror(np.asarray(part, dtype=np.int64),
                                              np.asarray(u, np.float32),
                                              np.asarray(v, np.float32))
        return new_part.astype(np.int64), new_u.astype(np.float32), new_v.astype(np.float32)


def load_symmetry(spec: str | Path) -> ChartSymmetry:
    """``"anny"`` for the Anny charts, else a DensePose symmetry file (.mat or .npz)."""
    if str(spec) == "anny":
        return AnnySymmetry()
    return LookupTableSymmetry.from_file(spec)
