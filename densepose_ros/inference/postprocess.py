"""DensePose results -> per-person IUV charts, a full-frame IUV image, a colour overlay.

Two ways from the M x M predictor outputs to a person's chart (``CHART_MODES``):

- ``exact`` (default): what detectron2 does (``densepose_chart_predictor_output_to_result``),
  so results match the model zoo's published accuracy: the coarse and fine logits are
  resampled bilinearly to detectron2's integer box (``int()`` of x, y, w, h), the labels are
  their argmax there, and U/V (and the U/V confidence) are the bilinear resampling of the
  chosen chart's channel.
- ``fast``: the labels are decided on the predictor grid and resized to the box by nearest
  neighbour (4 channels resampled per pixel instead of all 27-40): cheaper, blockier edges
  on large boxes, and the box is the smallest integer box covering the float box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from densepose_ros.inference.resample import bilinear_matrix, bilinear_taps
from densepose_ros.inference.structures import DensePoseResult, to_numpy

NUM_CHARTS = 24
CHART_MODES = ("exact", "fast")
DEFAULT_CHART_MODE = "exact"
# detectron2's lower bound of the U/V residual variance (UV_CONFIDENCE.EPSILON): the
# smallest standard deviation a WC model can predict is its square root.
UV_VARIANCE_EPSILON = 0.01


@dataclass
class PersonIUV:
    """One person's DensePose chart at the resolution of its box.

    Attributes:
        labels: [h, w] uint8 surface chart per pixel, 0 background, 1..24 body charts
            (fine segmentation masked by the coarse foreground).
        u: [h, w] float32 U coordinate in [0, 1] of the pixel's chart (0 on background).
        v: [h, w] float32 V coordinate in [0, 1], same layout.
        box: (x0, y0, x1, y1) integer box in source pixels that the arrays cover, end
            exclusive: labels[r, c] is source pixel (x0 + c, y0 + r); h = y1 - y0,
            w = x1 - x0. It may reach outside the image for caller-supplied boxes.
        score: detection score of the person.
        uv_sigma: [h, w] float32 predicted standard deviation of U and V at each pixel
            (sqrt(softplus(sigma_2) + 0.01), detectron2's WC models; 0 on background), or
            None for models without U/V confidence.
        track_id: the person's track id (>= 1) when a tracker follows people, else 0.
        keypoints: [17, 3] float32 (x, y, score) COCO keypoints in source pixels, for
            models with a keypoint head, else None.
    """

    labels: np.ndarray
    u: np.ndarray
    v: np.ndarray
    box: tuple[int, int, int, int]
    score: float
    uv_sigma: np.ndarray | None = None
    track_id: int = 0
    keypoints: np.ndarray | None = None


def uv_confidence_bytes(uv_sigma: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The published per-pixel U/V confidence: uint8 round(255 * 0.1 / sigma), where 0.1 is
    the smallest sigma a model can predict (so 255 is the most confident); 0 on background.
    Inverse: sigma = 25.5 / byte."""
    floor = math.sqrt(UV_VARIANCE_EPSILON)
    value = np.rint(255.0 * floor / np.maximum(uv_sigma, floor))
    return (value * (labels > 0)).astype(np.uint8)


def _uv_sigma(sigma_2: np.ndarray) -> np.ndarray:
    """Raw sigma_2 -> standard deviation (detectron2's variance softplus(x) + epsilon)."""
    sigma_2 = sigma_2.astype(np.float32, copy=False)
    # softplus(x) = max(x, 0) + log1p(exp(-|x|)), without overflow
    softplus = np.maximum(sigma_2, 0) + np.log1p(np.exp(-np.abs(sigma_2)))
    return np.sqrt(softplus + np.float32(UV_VARIANCE_EPSILON))


def detectron2_box(box) -> tuple[int, int, int, int]:
    """The integer box (x0, y0, x1, y1) detectron2 resamples a chart to: x, y, w, h of the
    float32 box truncated towards zero, w and h at least 1."""
    x1, y1, x2, y2 = np.asarray(to_numpy(box), dtype=np.float32)
    x, y, w, h = (int(value) for value in (x1, y1, x2 - x1, y2 - y1))  # int(): towards zero
    w, h = max(w, 1), max(h, 1)
    return x, y, x + w, y + h


def integer_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """Smallest integer pixel box (end exclusive, at least 1 x 1) covering a float box."""
    x0, y0 = math.floor(float(box[0])), math.floor(float(box[1]))
    x1 = max(x0 + 1, math.ceil(float(box[2])))
    y1 = max(y0 + 1, math.ceil(float(box[3])))
    return x0, y0, x1, y1


def person_iuv_charts(result: DensePoseResult, mode: str = DEFAULT_CHART_MODE
                      ) -> list[PersonIUV]:
    """Per-person IUV at box resolution, in the order of `result` (best score first), by
    ``mode`` (see the module docstring); with the result's keypoints, if any."""
    if mode == "exact":
        persons = _exact_charts(result)
    elif mode == "fast":
        persons = _fast_charts(result)
    else:
        raise ValueError(f"chart mode must be one of {', '.join(CHART_MODES)}, got {mode!r}")
    if result.keypoints is not None:
        keypoints_all = to_numpy(result.keypoints).astype(np.float32, copy=False)
        for person, keypoints in zip(persons, keypoints_all, strict=True):
            person.keypoints = keypoints
    return persons


# COCO's skeleton: pairs of keypoint indices joined when drawn (nose 0, eyes 1-2, ears 3-4,
# shoulders 5-6, elbows 7-8, wrists 9-10, hips 11-12, knees 13-14, ankles 15-16).
SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
            (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4))
# Keypoints scoring below this are not drawn (nor joined).
KEYPOINT_DRAW_SCORE = 0.05


def keypoints_json(keypoints: np.ndarray) -> list[list[float]]:
    """[K, 3] (x, y, score) as JSON-ready rows, rounded to 0.01 pixel / 0.0001 score."""
    return [[round(float(x), 2), round(float(y), 2), round(float(score), 4)]
            for x, y, score in np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)]


class _BilinearGrid:
    """Sampling positions of a bilinear resize from M x M to h x w (align_corners=False, as
    ``F.interpolate``): per output row and column the two source indices and weights."""

    def __init__(self, size: int, height: int, width: int):
        self.rows = bilinear_taps(size, height)
        self.cols = bilinear_taps(size, width)
        self.size = size

    def sample(self, planes: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """planes [C, M, M], channel [h, w] int -> [h, w]: each pixel's bilinear value of
        its own channel (what resampling every channel and then picking one gives)."""
        r0, r1, wr = self.rows
        c0, c1, wc = self.cols
        flat = planes.reshape(-1)
        base = channel.astype(np.int64) * (self.size * self.size)
        row0, row1 = (r0 * self.size)[:, None], (r1 * self.size)[:, None]

        def at(rows, cols):
            return flat[base + rows + cols[None, :]]

        top = at(row0, c0) * (1 - wc) + at(row0, c1) * wc
        bottom = at(row1, c0) * (1 - wc) + at(row1, c1) * wc
        return top * (1 - wr)[:, None] + bottom * wr[:, None]


def _first_argmax(planes: np.ndarray) -> np.ndarray:
    """argmax over the channels of [C, h, w] as uint8 (the first of equal maxima, as
    argmax): the maximum is one contiguous reduction, then the lowest channel reaching it is
    found plane by plane from the top down; much faster than argmax along the outer axis."""
    best = planes.max(axis=0)
    labels = np.zeros(best.shape, dtype=np.uint8)
    for channel in range(planes.shape[0] - 1, -1, -1):
        np.copyto(labels, channel, where=planes[channel] == best)
    return labels


# rows of a person's chart resampled together (27-40 planes of a band stay in the cache)
_ROW_BAND = 32


def _exact_charts(result: DensePoseResult) -> list[PersonIUV]:
    """detectron2's conversion, person by person (numpy; the resizes as matrix products)."""
    result = result.numpy()
    charts = result.charts
    boxes, scores = result.boxes.astype(np.float32), result.scores.astype(float).tolist()
    coarse_channels = charts.coarse_segm.shape[1]
    size = charts.fine_segm.shape[-1]
    persons = []
    for i in range(len(result)):
        x0, y0, x1, y1 = detectron2_box(boxes[i])
        height, width = y1 - y0, x1 - x0
        segm = np.concatenate([charts.coarse_segm[i], charts.fine_segm[i]]).astype(np.float32)
        # resized along x once, then along y a band of rows at a time: the 27-40 resized
        # planes of a large box never exist whole (3.5x faster on a 500 x 1000 box)
        by_cols = (segm.reshape(-1, size) @ bilinear_matrix(size, width).T).reshape(
            len(segm), size, width)
        row_weights = bilinear_matrix(size, height)
        labels = np.empty((height, width), dtype=np.uint8)
        for top in range(0, height, _ROW_BAND):
            band = row_weights[top:top + _ROW_BAND] @ by_cols  # [C, rows, w]
            # coarse argmax > 0 <=> a foreground channel beats the background (ties: bg)
            foreground = band[1:coarse_channels].max(axis=0) > band[0]
            labels[top:top + _ROW_BAND] = _first_argmax(band[coarse_channels:]) * foreground
        grid = _BilinearGrid(size, height, width)
        inside = labels > 0
        u = np.clip(grid.sample(charts.u[i].astype(np.float32), labels), 0, 1) * inside
        v = np.clip(grid.sample(charts.v[i].astype(np.float32), labels), 0, 1) * inside
        sigma = None
        if charts.sigma_2 is not None:
            sigma = _uv_sigma(grid.sample(charts.sigma_2[i], labels)) * inside
        persons.append(PersonIUV(labels.astype(np.uint8), u.astype(np.float32),
                                 v.astype(np.float32), (x0, y0, x1, y1), scores[i], sigma))
    return persons


def _fast_charts(result: DensePoseResult) -> list[PersonIUV]:
    """Labels decided on the predictor grid, then resized to the box (module docstring).

    The per-pixel decisions are taken on the M x M predictor grid (fine label = argmax of
    the 25 fine logits, U/V read from that label's channel) and then resampled to the box:
    labels by nearest neighbour, U/V bilinearly. The coarse foreground margin is resampled
    bilinearly before thresholding, so silhouettes stay smooth at any box size. This costs
    4 channels per pixel instead of resampling all 77-90 logit channels.
    """
    if len(result) == 0:
        return []
    result = result.numpy()
    charts = result.charts
    coarse = charts.coarse_segm.astype(np.float32)
    # Foreground margin: > 0 exactly where the coarse argmax is a foreground channel.
    margin = coarse[:, 1:].max(axis=1) - coarse[:, 0]
    sigma_2 = None if charts.sigma_2 is None else charts.sigma_2.astype(np.float32)
    labels, u, v, sigma_2 = _label_and_uv(charts.fine_segm.astype(np.float32),
                                          charts.u.astype(np.float32),
                                          charts.v.astype(np.float32), sigma_2)
    if sigma_2 is not None:
        sigma_2 = _uv_sigma(sigma_2)
    boxes = result.boxes.astype(np.float32)
    scores = result.scores.astype(np.float32)
    persons = []
    for i in range(len(result)):
        x0, y0, x1, y1 = integer_box(boxes[i])
        size = (x1 - x0, y1 - y0)
        person_labels = cv2.resize(labels[i], size, interpolation=cv2.INTER_NEAREST)
        u_plane, v_plane, margin_plane = (
            cv2.resize(plane[i], size, interpolation=cv2.INTER_LINEAR) for plane in (u, v, margin)
        )
        person_labels *= margin_plane > 0
        inside = (person_labels > 0).view(np.uint8)
        person_u = np.zeros_like(u_plane)
        person_v = np.zeros_like(v_plane)
        cv2.copyTo(np.clip(u_plane, 0.0, 1.0, out=u_plane), inside, person_u)
        cv2.copyTo(np.clip(v_plane, 0.0, 1.0, out=v_plane), inside, person_v)
        person_sigma = None
        if sigma_2 is not None:
            person_sigma = cv2.resize(sigma_2[i], size, interpolation=cv2.INTER_LINEAR)
            person_sigma *= inside
        persons.append(PersonIUV(person_labels, person_u, person_v, (x0, y0, x1, y1),
                                 float(scores[i]), person_sigma))
    return persons


def _label_and_uv(fine: np.ndarray, u: np.ndarray, v: np.ndarray,
                  sigma_2: np.ndarray | None = None):
    """Argmax label [N, M, M] uint8 of the fine logits and U, V [N, M, M] of that channel
    (and sigma_2 of that channel, when given; else None).

    The maximum over channels is one contiguous reduction; the label is then the lowest
    channel reaching it (argmax's tie rule), found plane by plane from the top channel down.
    Much faster than argmax along the strided channel axis. One flat-index gather for U, V.
    """
    best = fine.max(axis=1)
    labels = np.zeros(best.shape, dtype=np.uint8)
    for channel in range(fine.shape[1] - 1, 0, -1):
        np.copyto(labels, channel, where=fine[:, channel] == best)
    np.copyto(labels, 0, where=fine[:, 0] == best)
    n, c, h, w = fine.shape
    flat = (np.arange(n).reshape(n, 1, 1) * c + labels) * (h * w) + np.arange(h * w).reshape(h, w)
    chosen_sigma = None if sigma_2 is None else sigma_2.reshape(-1)[flat]
    return labels, u.reshape(-1)[flat], v.reshape(-1)[flat], chosen_sigma


@dataclass
class ImageOverlap:
    """Where a patch spanning an integer box (x0, y0, x1, y1) lies inside an image.

    image: (rows, cols) slices of the image; patch: the same pixels' slices of the patch;
    box: the clipped box (x0, y0, x1, y1) in image pixels.
    """

    image: tuple[slice, slice]
    patch: tuple[slice, slice]
    box: tuple[int, int, int, int]


def image_overlap(box: tuple[int, int, int, int], height: int, width: int
                  ) -> ImageOverlap | None:
    """The part of ``box`` inside a ``height`` x ``width`` image; None if it has none."""
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    return ImageOverlap(image=(slice(cy0, cy1), slice(cx0, cx1)),
                        patch=(slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)),
                        box=(cx0, cy0, cx1, cy1))


def quantise_unit(values: np.ndarray) -> np.ndarray:
    """U or V in [0, 1] -> uint8 round(x * 255) (clipped; ties to even, as numpy rounds):
    the one quantisation of IUV images and messages."""
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def full_frame_iuv(result: DensePoseResult,
                   persons: list[PersonIUV] | None = None) -> np.ndarray:
    """[H, W, 3] uint8 image (I, U * 255, V * 255), the usual DensePose IUV convention.

    Persons are painted in increasing score order, so where they overlap the higher score
    is on top; background pixels stay (0, 0, 0). Pass `persons` to reuse computed charts.
    """
    height, width = result.image_size
    iuv = np.zeros((height, width, 3), dtype=np.uint8)
    persons = person_iuv_charts(result) if persons is None else persons
    for person in sorted(persons, key=lambda p: p.score):
        overlap = image_overlap(person.box, height, width)
        if overlap is None:
            continue
        src = overlap.patch
        labels = person.labels[src]
        patch = cv2.merge([labels, quantise_unit(person.u[src]), quantise_unit(person.v[src])])
        cv2.copyTo(patch, (labels > 0).view(np.uint8), iuv[overlap.image])  # into the view
    return iuv


def _part_palette() -> np.ndarray:
    """25 BGR colours: black background, then hues around the colour wheel per chart."""
    hsv = np.zeros((1, NUM_CHARTS + 1, 3), dtype=np.uint8)
    # Interleave hues so that the two charts of one limb (i, i + 1) differ clearly.
    order = np.concatenate([np.arange(0, NUM_CHARTS, 2), np.arange(1, NUM_CHARTS, 2)])
    hsv[0, 1:, 0] = (order * 180 // NUM_CHARTS).astype(np.uint8)
    hsv[0, 1:, 1] = 220
    hsv[0, 1:, 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


PART_COLORS_BGR = _part_palette()
_PART_LUT = np.zeros((256, 1, 3), dtype=np.uint8)
_PART_LUT[: NUM_CHARTS + 1, 0] = PART_COLORS_BGR


def _union_region(persons: list[PersonIUV], height: int, width: int):
    """(rows, cols) slices of the smallest image region holding every person's box, or None."""
    if not persons:
        return None
    x0 = max(0, min(p.box[0] for p in persons))
    y0 = max(0, min(p.box[1] for p in persons))
    x1 = min(width, max(p.box[2] for p in persons))
    y1 = min(height, max(p.box[3] for p in persons))
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def draw_overlay(image_bgr: np.ndarray, result: DensePoseResult, alpha: float = 0.6,
                 persons: list[PersonIUV] | None = None) -> np.ndarray:
    """A copy of `image_bgr` with body charts coloured by part, boxes and scores drawn.

    Parts are blended with weight `alpha`; U/V shading (brighter with U) keeps the surface
    coordinates visible inside each part.
    """
    if image_bgr.shape[:2] != tuple(result.image_size):
        raise ValueError(f"image is {image_bgr.shape[:2]}, result is for {result.image_size}")
    persons = person_iuv_charts(result) if persons is None else persons
    iuv = full_frame_iuv(result, persons)
    out = image_bgr.copy()
    region = _union_region(persons, *result.image_size)
    if region is not None:  # colour only where persons are: the rest stays a plain copy
        labels, u_bytes, source = iuv[region + (0,)], iuv[region + (1,)], image_bgr[region]
        colors = cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2BGR), _PART_LUT)
        # Brightness from 55% to 100% with U, so the surface coordinates show inside a part.
        shade = cv2.convertScaleAbs(u_bytes, alpha=115.0 / 255.0, beta=140.0)
        colors = cv2.multiply(colors, cv2.cvtColor(shade, cv2.COLOR_GRAY2BGR), scale=1.0 / 255)
        blended = cv2.addWeighted(source, 1.0 - alpha, colors, alpha, 0.0)
        cv2.copyTo(blended, (labels > 0).view(np.uint8), out[region])
    thickness = max(1, round(min(result.image_size) / 300))
    for person in persons:
        if person.keypoints is not None:
            _draw_skeleton(out, person.keypoints, thickness)
    for person in persons:
        x0, y0, x1, y1 = person.box
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), thickness)
        text = (f"#{person.track_id} " if person.track_id else "") + f"{person.score:.2f}"
        scale = 0.4 * thickness
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        ty = max(y0, th + 4)
        cv2.rectangle(out, (x0, ty - th - 4), (x0 + tw + 4, ty), (0, 255, 0), -1)
        cv2.putText(out, text, (x0 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return out


def _draw_skeleton(image: np.ndarray, keypoints: np.ndarray, thickness: int) -> None:
    """COCO skeleton lines and keypoint dots, where both ends score at least
    KEYPOINT_DRAW_SCORE."""
    shown = keypoints[:, 2] >= KEYPOINT_DRAW_SCORE
    points = [(int(round(x)), int(round(y))) for x, y in keypoints[:, :2]]
    for a, b in SKELETON:
        if shown[a] and shown[b]:
            cv2.line(image, points[a], points[b], (255, 255, 255), thickness, cv2.LINE_AA)
    for k in np.flatnonzero(shown):
        cv2.circle(image, points[k], thickness + 1, (0, 0, 255), -1, cv2.LINE_AA)
