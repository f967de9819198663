"""The 24 DensePose charts on the Anny surface: the asset, its loader and the mirror map.

Chart indices follow DensePose (1..24, 0 = background): 1/2 torso back/front, 3/4 right/left
hand, 5/6 left/right foot, 7/9 and 8/10 upper leg right/left (back/front), 11/13 and 12/14
lower leg right/left (back/front), 15/17 and 16/18 upper arm left/right (front/back), 19/21
and 20/22 lower arm left/right (front/back), 23/24 head right/left. "Left" is the body's
own left. (U, V) are our own parameterisation of the Anny surface, not SMPL's: V runs
along the limb (or up the torso/head), U around it; see docs/synthetic_data.md.

Mirror map (left/right flip of an image): chart ``I`` becomes ``MIRROR_CHART[I]``; on the
self-symmetric torso charts (1, 2) U becomes 1 - U; everywhere else (U, V) are unchanged,
because the right-side charts are built as exact mirror images of the left-side ones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_CHARTS = 24
NUM_COARSE_PARTS = 14

CHART_NAMES: tuple[str, ...] = (
    "background",
    "torso back", "torso front", "right hand", "left hand", "left foot", "right foot",
    "upper leg right back", "upper leg left back",
    "upper leg right front", "upper leg left front",
    "lower leg right back", "lower leg left back",
    "lower leg right front", "lower leg left front",
    "upper arm left front", "upper arm right front",
    "upper arm left back", "upper arm right back",
    "lower arm left front", "lower arm right front",
    "lower arm left back", "lower arm right back",
    "head right", "head left",
)  # fmt: skip

# Chart index of the mirror image (index 0 = background stays 0).
MIRROR_CHART = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
    dtype=np.int64,
)
# Charts whose U is reversed by a mirror flip (self-symmetric charts, U across the midline).
MIRROR_FLIPS_U = np.zeros(NUM_CHARTS + 1, dtype=bool)
MIRROR_FLIPS_U[[1, 2]] = True

COARSE_PART_NAMES: tuple[str, ...] = (
    "torso", "right hand", "left hand", "left foot", "right foot",
    "upper leg right", "upper leg left", "lower leg right", "lower leg left",
    "upper arm left", "upper arm right", "lower arm left", "lower arm right", "head",
)  # fmt: skip
# Coarse part (1..14, the order of ``dp_masks``) of each chart (0 = background).
CHART_TO_COARSE = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14],
    dtype=np.int64,
)

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "anny"
CHARTS_ASSET = ASSET_DIR / "anny_charts.npz"
# U and V are stored quantised to uint16 over [0, 1].
UV_QUANT = 65535


@dataclass(frozen=True)
class AnnyCharts:
    """DensePose charts on the Anny template (13,718 vertices, 27,420 triangles).

    Attributes:
        faces: (F, 3) int64 vertex indices of each triangle (Anny's own triangulation).
        rest_vertices: (V, 3) float32 template vertices in metres at Anny's default
            phenotype, rest pose; x = body's left, y = backwards, z = up.
        face_chart: (F,) int64 chart index 1..24 of each triangle (never 0).
        corner_uv: (F, 3, 2) float32 (U, V) in [0, 1] at each triangle corner (charts are
            split along their seams, so a vertex has one (U, V) per chart it touches).
        face_hidden: (F,) bool, True for inner surfaces a renderer leaves out (mouth
            cavity, tongue, the back of the eyeballs and the eye sockets).
        vertex_mirror: (V,) int64 index of each vertex's mirror image (x -> -x).
    """

    faces: np.ndarray
    rest_vertices: np.ndarray
    face_chart: np.ndarray
    corner_uv: np.ndarray
    face_hidden: np.ndarray
    vertex_mirror: np.ndarray

    @property
    def face_coarse(self) -> np.ndarray:
        """(F,) coarse part 1..14 of each triangle (``dp_masks`` order)."""
        return CHART_TO_COARSE[self.face_chart]

    def face_mirror(self) -> np.ndarray:
        """(F,) index of each triangle's mirror image (-1 where the mesh is not symmetric)."""
        key = {tuple(sorted(f)): i for i, f in enumerate(self.faces.tolist())}
        mirrored = self.vertex_mirror[self.faces]
        return np.array([key.get(tuple(sorted(f)), -1) for f in mirrored.tolist()])


@functools.cache
def load_charts(path: Path = CHARTS_ASSET) -> AnnyCharts:
    """Load the chart asset (made by ``python -m densepose_ros.synth.make_charts``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path} is missing; regenerate it with `python -m densepose_ros.synth.make_charts`"
        )
    with np.load(path) as data:
        return AnnyCharts(
            faces=data["faces"].astype(np.int64),
            rest_vertices=data["rest_vertices"].astype(np.float32),
            face_chart=data["face_chart"].astype(np.int64),
            corner_uv=data["corner_uv"].astype(np.float32) / UV_QUANT,
            face_hidden=data["face_hidden"].astype(bool),
            vertex_mirror=data["vertex_mirror"].astype(np.int64),
        )


def mirror_map() -> tuple[np.ndarray, np.ndarray]:
    """(chart -> mirrored chart (25,), chart -> whether U becomes 1 - U (25,)); index 0 = bg."""
    return MIRROR_CHART.copy(), MIRROR_FLIPS_U.copy()


def mirror_iuv(
    part: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(I, U, V) of the mirror image of surface points (I, U, V), elementwise.

    Use it with a horizontal image flip: the flipped pixel shows the mirrored chart. I = 0
    (background) stays 0; U, V of background points pass through unchanged.
    """
    part = np.asarray(part)
    u = np.asarray(u)
    flips = MIRROR_FLIPS_U[part]
    return MIRROR_CHART[part].astype(part.dtype), np.where(flips, 1.0 - u, u).astype(
        u.dtype
    ), np.asarray(v).copy()
