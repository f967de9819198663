"""Image decoding for ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` fields,
without ROS or cv_bridge (which has no ROS 2 wheel on PyPI).

Every function takes the message's plain fields and returns a numpy array, or raises
``ImageDecodeError`` whose message says exactly what is wrong with the input; the node
logs that message and skips the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

# Bytes per channel and channels per pixel of the colour/mono encodings the node accepts.
_COLOR_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),  # treated as bgr8, as cv_bridge does
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
}
_DEPTH_ENCODINGS: dict[str, tuple[np.dtype, float]] = {
    # encoding -> (dtype, metres per unit)
    "16UC1": (np.dtype(np.uint16), 1e-3),  # REP 118: millimetres
    "mono16": (np.dtype(np.uint16), 1e-3),
    "32FC1": (np.dtype(np.float32), 1.0),  # REP 118: metres
}
SUPPORTED_ENCODINGS = tuple(_COLOR_ENCODINGS)
SUPPORTED_DEPTH_ENCODINGS = tuple(_DEPTH_ENCODINGS)


class ImageDecodeError(ValueError):
    """The message cannot be turned into an image; ``kind`` names the failure class
    (``encoding``, ``size``, ``truncated``, ``too_large``, ``corrupt``) for diagnostics."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _pixel_view(
    data, height: int, width: int, step: int, is_bigendian: bool, dtype: np.dtype,
    channels: int, max_pixels: int,
) -> np.ndarray:
    """(height, width, channels) view of ``data`` honouring ``step`` and byte order."""
    if height <= 0 or width <= 0:
        raise ImageDecodeError("size", f"image has zero size ({width}x{height})")
    if height * width > max_pixels:
        raise ImageDecodeError(
            "too_large", f"image of {width}x{height} exceeds max_image_pixels={max_pixels}"
        )
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            "size", f"step {step} is smaller than a row of {width} pixels ({row_bytes} bytes)"
        )
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buffer = buffer.reshape(-1).view(np.uint8)
    if buffer.size < height * step:
        raise ImageDecodeError(
            "truncated", f"data has {buffer.size} bytes, expected height*step = {height * step}"
        )
    rows = buffer[: height * step].reshape(height, step)[:, :row_bytes]
    order = ">" if is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(order))
    return pixels.reshape(height, width, channels)


def decode_image(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool, data,
    max_pixels: int = 64_000_000,
) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a BGR uint8 array of shape (height, width, 3).

    16-bit mono is scaled to 8 bits by its own range in the frame (min..max), since 16-bit
    mono cameras rarely use the full range and a fixed >> 8 would leave a black image.
    """
    if encoding not in _COLOR_ENCODINGS:
        raise ImageDecodeError(
            "encoding",
            f"unsupported encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})",
        )
    dtype, channels = _COLOR_ENCODINGS[encoding]
    pixels = _pixel_view(data, height, width, step, is_bigendian, dtype, channels, max_pixels)
    if encoding in ("bgr8", "8UC3"):
        return pixels
    if encoding == "rgb8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if encoding == "rgba8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)
    if encoding == "bgra8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    mono = pixels[:, :, 0]
    if dtype.itemsize == 2:
        mono = mono.astype(np.float32)
        low, high = float(mono.min()), float(mono.max())
        mono = ((mono - low) * (255.0 / max(high - low, 1.0))).astype(np.uint8)
    return cv2.cvtColor(mono, cv2.COLOR_GRAY2BGR)


def compressed_image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG or JPEG file, or None if not found."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 < len(head):
            if head[pos] != 0xFF:
                return None
            marker = head[pos + 1]
            length = int.from_bytes(head[pos + 2 : pos + 4], "big")
            # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height = int.from_bytes(head[pos + 5 : pos + 7], "big")
                width = int.from_bytes(head[pos + 7 : pos + 9], "big")
                return width, height
            pos += 2 + length
    return None


def decode_compressed(format_: str, data, max_pixels: int = 64_000_000) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as a BGR uint8 array."""
    buffer = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.reshape(-1).view(np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError("corrupt", f"compressed image ({format_ or 'no format'}) is empty")
    # Check the size in the header before decoding so a huge image cannot exhaust memory.
    size = compressed_image_size(buffer.tobytes()[:65536])
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageDecodeError(
            "too_large",
            f"compressed image of {size[0]}x{size[1]} exceeds max_image_pixels={max_pixels}",
        )
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(
            "corrupt", f"compressed image ({format_ or 'no format'}, {buffer.size} bytes) "
            "could not be decoded (corrupt or not JPEG/PNG)"
        )
    return image


def decode_depth(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool, data,
    max_pixels: int = 64_000_000,
) -> np.ndarray:
    """A depth ``sensor_msgs/Image`` (16UC1 millimetres or 32FC1 metres) as float32 metres,
    shape (height, width); invalid depth (0, NaN, inf) becomes NaN."""
    if encoding not in _DEPTH_ENCODINGS:
        raise ImageDecodeError(
            "encoding",
            f"unsupported depth encoding '{encoding}' "
            f"(supported: {', '.join(SUPPORTED_DEPTH_ENCODINGS)})",
        )
    dtype, scale = _DEPTH_ENCODINGS[encoding]
    pixels = _pixel_view(data, height, width, step, is_bigendian, dtype, 1, max_pixels)[:, :, 0]
    depth = pixels.astype(np.float32) * np.float32(scale)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def encode_image_fields(image: np.ndarray, encoding: str) -> dict:
    """Fields of a ``sensor_msgs/Image`` for a contiguous uint8 (H, W, C) array."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    return {
        "height": height, "width": width, "encoding": encoding, "is_bigendian": 0,
        "step": width * channels * image.dtype.itemsize, "data": image.reshape(-1),
    }
