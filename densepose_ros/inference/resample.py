"""Separable resampling in numpy, as ``F.interpolate`` (``align_corners=False``) computes it.

A bilinear or bicubic resize is a matrix product per axis: out = Ry @ maps @ Rx.T, with each
output pixel's taps and weights (PyTorch's source positions and border rules) in the rows of
Ry and Rx. Used where torch is not loaded: the graph backends' glue and the charts.
"""

from __future__ import annotations

import numpy as np

# PyTorch's (and OpenCV's) bicubic convolution constant.
CUBIC_A = -0.75


def _source_positions(size: int, out: int) -> np.ndarray:
    """Source coordinate (float32) of each output pixel centre (``align_corners=False``):
    float32 scale, the multiply-add rounded once (as PyTorch's fused CPU kernels)."""
    scale = np.float64(np.float32(size / out))
    return ((np.arange(out) + 0.5) * scale - 0.5).astype(np.float32)


def bilinear_taps(size: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel along one axis of a bilinear resize from `size` to `out`
    (``align_corners=False``): the lower and upper source index and the upper one's weight
    (negative source positions clamp to 0, the last pixel repeats)."""
    src = np.maximum(_source_positions(size, out), np.float32(0.0))
    low = src.astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    return low, high, src - low.astype(np.float32)


def bilinear_matrix(size: int, out: int) -> np.ndarray:
    """[out, size] weights of ``F.interpolate(mode="bilinear", align_corners=False)`` along
    one axis (``bilinear_taps`` as a matrix)."""
    low, high, frac = bilinear_taps(size, out)
    matrix = np.zeros((out, size), dtype=np.float32)
    rows = np.arange(out)
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def bicubic_matrix(size: int, out: int) -> np.ndarray:
    """[out, size] weights of ``F.interpolate(mode="bicubic", align_corners=False)`` along
    one axis (Keys' cubic with A = -0.75, taps beyond the border clamped to it)."""
    src = _source_positions(size, out)
    base = np.floor(src)
    t = src - base
    a = np.float32(CUBIC_A)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    taps = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)
    index = np.clip(base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, size - 1)
    matrix = np.zeros((out, size), dtype=np.float32)
    np.add.at(matrix, (np.repeat(np.arange(out), 4), index.reshape(-1)), taps.reshape(-1))
    return matrix


def resize_separable(maps: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """maps [..., h, w] -> [..., H, W] = rows [H, h] @ maps @ cols[W, w].T."""
    *lead, h, w = maps.shape
    by_cols = np.ascontiguousarray(maps, dtype=np.float32).reshape(-1, w) @ cols.T
    by_cols = by_cols.reshape(-1, h, cols.shape[0])
    return (rows @ by_cols).reshape(*lead, rows.shape[0], cols.shape[0])


def resize_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """``F.interpolate(maps, (height, width), mode="bilinear", align_corners=False)``."""
    return resize_separable(maps, bilinear_matrix(maps.shape[-2], height),
                            bilinear_matrix(maps.shape[-1], width))
