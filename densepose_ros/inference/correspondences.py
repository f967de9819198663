"""Per-person surface correspondences (pixel -> part, U, V, optional 3D point). ROS-free.

Points are taken on a grid of the whole image (pixels whose column and row are multiples of
``stride``, shifted by ``stride // 2``), so points of neighbouring persons and of
consecutive frames fall on the same pixels, which makes them easy to compare over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CameraIntrinsics:
    """Pinhole intrinsics of the depth image (pixels): focal lengths and principal point,
    plus the size of the image they refer to."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        # Back-projection divides by the size and the focal lengths: refuse what cannot work
        # here rather than fail (or return garbage) for every frame later.
        if not (self.width > 0 and self.height > 0):
            raise ValueError(
                f"camera_info has no valid image size ({self.width}x{self.height})")
        values = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        if not (np.isfinite(values).all() and self.fx > 0 and self.fy > 0):
            raise ValueError(
                f"camera_info has no valid intrinsics (fx={self.fx}, fy={self.fy}, "
                f"cx={self.cx}, cy={self.cy})")

    @classmethod
    def from_k(cls, k, width: int, height: int) -> CameraIntrinsics:
        """From the row-major 3x3 ``K`` of ``sensor_msgs/CameraInfo``; ValueError when the
        size is not positive or K has no finite, positive focal lengths."""
        k = np.asarray(k, dtype=np.float64).reshape(9)
        return cls(fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]),
                   width=int(width), height=int(height))


@dataclass
class Correspondences:
    """K sampled pixels of one person and where on the body surface they lie.

    x, y: (K,) uint16 pixel column and row in the source image.
    part: (K,) uint8 DensePose chart index 1..24.
    u, v: (K,) float32 chart coordinates in [0, 1].
    xyz: (K, 3) float32 camera-frame point in metres (NaN where depth is invalid), or
         shape (0, 3) when no depth is used.
    """

    x: np.ndarray
    y: np.ndarray
    part: np.ndarray
    u: np.ndarray
    v: np.ndarray
    xyz: np.ndarray


def sample_correspondences(
    labels: np.ndarray, u: np.ndarray, v: np.ndarray, x0: int, y0: int, stride: int
) -> Correspondences:
    """Foreground pixels of a person's chart on the image-wide ``stride`` grid.

    labels, u, v: (h, w) chart of the person whose top-left pixel is (x0, y0).
    """
    height, width = labels.shape
    offset = stride // 2
    # First grid column/row inside the box: the smallest c >= x0 with c % stride == offset.
    first_x = x0 + (offset - x0) % stride
    first_y = y0 + (offset - y0) % stride
    cols = np.arange(first_x - x0, width, stride)
    rows = np.arange(first_y - y0, height, stride)
    grid_labels = labels[np.ix_(rows, cols)]
    r_idx, c_idx = np.nonzero(grid_labels)
    rr, cc = rows[r_idx], cols[c_idx]
    return Correspondences(
        x=(cc + x0).astype(np.uint16),
        y=(rr + y0).astype(np.uint16),
        part=labels[rr, cc].astype(np.uint8),
        u=u[rr, cc].astype(np.float32),
        v=v[rr, cc].astype(np.float32),
        xyz=np.zeros((0, 3), np.float32),
    )


def backproject(
    x: np.ndarray, y: np.ndarray, depth_m: np.ndarray, intrinsics: CameraIntrinsics,
    image_size: tuple[int, int],
) -> np.ndarray:
    """Camera-frame 3D points (K, 3) of colour pixels (x, y) from an aligned depth image.

    The depth image may have another resolution than the colour image (same field of
    view): pixel coordinates are scaled. Invalid depth gives NaN.
    """
    height, width = image_size
    depth_h, depth_w = depth_m.shape
    # Depth pixel under each colour pixel's centre (same field of view, maybe other size).
    dx = np.clip(np.floor((x + 0.5) * (depth_w / width)).astype(np.int64), 0, depth_w - 1)
    dy = np.clip(np.floor((y + 0.5) * (depth_h / height)).astype(np.int64), 0, depth_h - 1)
    z = depth_m[dy, dx].astype(np.float64)
    # Intrinsics rescaled to the colour image's pixel grid (pixel-centre convention).
    sx, sy = width / intrinsics.width, height / intrinsics.height
    fx, fy = intrinsics.fx * sx, intrinsics.fy * sy
    cx, cy = (intrinsics.cx + 0.5) * sx - 0.5, (intrinsics.cy + 0.5) * sy - 0.5
    xyz = np.stack([(x - cx) * z / fx, (y - cy) * z / fy, z], axis=1)
    return xyz.astype(np.float32)
