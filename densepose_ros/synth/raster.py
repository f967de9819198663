"""A CPU z-buffer triangle rasteriser (numba), with perspective-correct barycentrics.

Pixel (row r, column c) samples the point (c + 0.5, r + 0.5); a triangle covers a pixel when
that point lies inside or on its edges. Both windings are drawn (no back-face culling): the
z-buffer keeps the nearest surface, which is what DensePose labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class Fragments:
    """Nearest triangle per pixel.

    Attributes:
        face: (H, W) int32 index into the rasterised triangle list, -1 where empty.
        bary: (H, W, 3) float32 perspective-correct barycentric weights of the triangle's
            three corners at the pixel centre (0 where empty).
        depth: (H, W) float32 camera depth (inf where empty).
    """

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray


@njit(cache=True, nogil=True)
def _rasterize(px, py, pz, faces, zbuf, face_buf, bary_buf):  # pragma: no cover - numba
    height, width = zbuf.shape
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        z0, z1, z2 = pz[i0], pz[i1], pz[i2]
        if z0 <= 0.0 or z1 <= 0.0 or z2 <= 0.0:
            continue  # behind the camera (scenes keep people in front; no clipping needed)
        x0, y0, x1, y1, x2, y2 = px[i0], py[i0], px[i1], py[i1], px[i2], py[i2]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        c_lo = max(int(np.ceil(min(x0, x1, x2) - 0.5)), 0)
        c_hi = min(int(np.floor(max(x0, x1, x2) - 0.5)), width - 1)
        r_lo = max(int(np.ceil(min(y0, y1, y2) - 0.5)), 0)
        r_hi = min(int(np.floor(max(y0, y1, y2) - 0.5)), height - 1)
        inv_area = 1.0 / area
        for r in range(r_lo, r_hi + 1):
            cy = r + 0.5
            for c in range(c_lo, c_hi + 1):
                cx = c + 0.5
                w0 = ((x1 - cx) * (y2 - cy) - (x2 - cx) * (y1 - cy)) * inv_area
                w1 = ((x2 - cx) * (y0 - cy) - (x0 - cx) * (y2 - cy)) * inv_area
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                # Screen-space weights -> perspective-correct ones via 1/z interpolation.
                q0, q1, q2 = w0 / z0, w1 / z1, w2 / z2
                inv_z = q0 + q1 + q2
                z = 1.0 / inv_z
                if z < zbuf[r, c]:
                    zbuf[r, c] = z
                    face_buf[r, c] = f
                    bary_buf[r, c, 0] = q0 * z
                    bary_buf[r, c, 1] = q1 * z
                    bary_buf[r, c, 2] = q2 * z


def rasterize(points: np.ndarray, faces: np.ndarray, height: int, width: int) -> Fragments:
    """Rasterise triangles ``faces`` (F, 3) over ``points`` (N, 3) = (pixel x, pixel y, depth)."""
    zbuf = np.full((height, width), np.inf, dtype=np.float64)
    face_buf = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    pts = np.ascontiguousarray(points, dtype=np.float64)
    _rasterize(pts[:, 0].copy(), pts[:, 1].copy(), pts[:, 2].copy(),
               np.ascontiguousarray(faces, dtype=np.int32), zbuf, face_buf, bary)
    return Fragments(face=face_buf, bary=bary, depth=zbuf.astype(np.float32))
