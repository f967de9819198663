"""Image message decoding: every supported encoding, padding, byte order, and bad input."""

import cv2
import numpy as np
import pytest

from densepose_ros.io.image_codec import (
    ImageDecodeError,
    compressed_image_size,
    decode_compressed,
    decode_depth,
    decode_image,
)

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)


def padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row bytes with ``pad`` extra bytes per row, as a camera driver with alignment sends."""
    flat = rows.reshape(rows.shape[0], -1).view(np.uint8)
    out = np.concatenate([flat, np.full((flat.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return out.tobytes(), out.shape[1]


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    "encoding,make",
    [
        ("bgr8", lambda bgr: bgr),
        ("rgb8", lambda bgr: bgr[:, :, ::-1]),
        ("bgra8", lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 9, np.uint8)])),
        ("rgba8", lambda bgr: np.dstack([bgr[:, :, ::-1], np.full(bgr.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_encodings_give_the_same_bgr(encoding, make, pad):
    data, step = padded(np.ascontiguousarray(make(BGR)), pad)
    out = decode_image(encoding, 7, 5, step, False, data)
    np.testing.assert_array_equal(out, BGR)


def test_mono8_is_replicated_to_three_channels():
    mono = BGR[:, :, 0].copy()
    data, step = padded(mono, 1)
    out = decode_image("mono8", 7, 5, step, False, data)
    assert out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out[:, :, 1], mono)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_is_stretched_to_8_bits_honouring_byte_order(bigendian):
    values = np.linspace(1000, 3000, 35).reshape(7, 5).astype(np.uint16)
    raw = values.astype(">u2" if bigendian else "<u2")
    out = decode_image("mono16", 7, 5, 10, bigendian, raw.tobytes())
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert np.all(np.diff(out[:, :, 0].reshape(-1).astype(int)) >= 0)


@pytest.mark.parametrize(
    "kwargs,kind",
    [
        ({"encoding": "yuv422"}, "encoding"),
        ({"height": 0}, "size"),
        ({"width": 0}, "size"),
        ({"step": 14}, "size"),
        ({"data": b"\0" * (7 * 15 - 1)}, "truncated"),
        ({"height": 5000, "width": 5000, "step": 15000}, "too_large"),
    ],
)
def test_bad_raw_images_raise_with_a_kind(kwargs, kind):
    args = {"encoding": "bgr8", "height": 7, "width": 5, "step": 15, "is_bigendian": False,
            "data": BGR.tobytes(), "max_pixels": 1_000_000}
    args.update(kwargs)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(**args)
    assert info.value.kind == kind
    assert str(info.value)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_round_trip_and_header_size(ext):
    image = cv2.resize(BGR, (50, 70), interpolation=cv2.INTER_NEAREST)
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    assert compressed_image_size(buffer.tobytes()) == (50, 70)
    out = decode_compressed(ext[1:], buffer.tobytes())
    assert out.shape == (70, 50, 3)
    if ext == ".png":
        np.testing.assert_array_equal(out, image)


def test_corrupt_empty_and_huge_compressed_images_are_rejected():
    ok, buffer = cv2.imencode(".jpg", cv2.resize(BGR, (64, 64)))
    truncated = buffer.tobytes()[:40]
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed("jpeg", truncated)
    assert info.value.kind == "corrupt"
    with pytest.raises(ImageDecodeError):
        decode_compressed("jpeg", b"")
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed("jpeg", buffer.tobytes(), max_pixels=100)
    assert info.value.kind == "too_large"


def test_depth_units_and_invalid_values():
    mm = np.array([[0, 1500], [2000, 65535]], np.uint16)
    depth = decode_depth("16UC1", 2, 2, 4, False, mm.tobytes())
    assert np.isnan(depth[0, 0])
    np.testing.assert_allclose(depth[0, 1], 1.5)
    metres = np.array([[np.nan, 1.25], [-1.0, np.inf]], np.float32)
    depth = decode_depth("32FC1", 2, 2, 8, False, metres.tobytes())
    np.testing.assert_allclose(depth[0, 1], 1.25)
    assert np.isnan(depth[[0, 1, 1], [0, 0, 1]]).all()
    with pytest.raises(ImageDecodeError):
        decode_depth("bgr8", 2, 2, 6, False, b"\0" * 12)
