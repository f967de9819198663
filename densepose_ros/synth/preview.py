"""Preview sheets: each rendered image next to its I (part), U and V maps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from densepose_ros.synth.scene import RenderedScene

# A fixed, well-separated colour per chart (index 0 = background, black).
_PART_COLORS = np.concatenate(
    [np.zeros((1, 3), np.uint8),
     cv2.applyColorMap(np.linspace(0, 255, 24).astype(np.uint8)[None], cv2.COLORMAP_HSV)[0]],
)  # fmt: skip
_PART_COLORS[1:] = _PART_COLORS[1:][np.argsort(np.arange(24) * 7 % 24)]


def iuv_panels(scene: RenderedScene) -> np.ndarray:
    """(H, 4W, 3) uint8 RGB: image | I colour-coded | U (jet) | V (jet), background black."""
    fg = scene.part > 0
    part = _PART_COLORS[scene.part][..., ::-1]
    panels = [scene.image, part]
    for channel in (scene.u, scene.v):
        jet = cv2.applyColorMap((channel * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        panels.append(np.where(fg[..., None], jet, 0).astype(np.uint8))
    return np.concatenate(panels, axis=1)


def write_preview(scenes: list[RenderedScene], path: Path, columns: int = 1) -> Path:
    """Write a grid of ``iuv_panels`` rows (PNG) and return its path."""
    rows = [iuv_panels(s) for s in scenes]
    h, w = max(r.shape[0] for r in rows), max(r.shape[1] for r in rows)
    rows = [cv2.copyMakeBorder(r, 0, h - r.shape[0] + 4, 0, w - r.shape[1] + 4,
                               cv2.BORDER_CONSTANT, value=(255, 255, 255)) for r in rows]
    while len(rows) % columns:
        rows.append(np.full_like(rows[0], 255))
    grid = np.concatenate(
        [np.concatenate(rows[i:i + columns], axis=1) for i in range(0, len(rows), columns)], 0
    )
    cv2.imwrite(str(path), grid[..., ::-1])
    return Path(path)
