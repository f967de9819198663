"""A ByteTrack-style multi-person tracker on boxes (Zhang et al., "ByteTrack: Multi-Object
Tracking by Associating Every Detection Box", ECCV 2022).

Each frame: every track's box is predicted with its constant velocity; confident detections
(score >= ``high_threshold``) are matched to all live tracks by IoU (Hungarian assignment,
scipy), then the remaining tracks are matched to the low-score detections
(``low_threshold`` <= score < ``high_threshold``), which is what keeps a person who is
partly hidden for a few frames on the same track. Unmatched confident detections start new
tracks; a track unmatched for more than ``track_buffer`` frames ends. Low-score detections
that continue no track are dropped. Ids start at 1 and are never reused (0 means "not
tracked" in messages). Boxes are xyxy in any consistent pixel frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from densepose_ros.inference.structures import DensePoseResult, to_numpy


@dataclass
class TrackerConfig:
    """ByteTrack's settings, with the node's names (every default lives here)."""

    # New tracks and the first association need this score (the node's score_threshold).
    high_threshold: float = 0.8
    # Detections from here up to high_threshold may only continue an existing track.
    low_threshold: float = 0.3
    # Least IoU of a predicted track box and a confident / a low-score detection to match
    # (ByteTrack: 0.2 and 0.5).
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    # Frames a track survives without a detection (a person hidden behind another).
    track_buffer: int = 30
    # Weight of the previous box in the published box (0: the detection as it is).
    box_smoothing: float = 0.0


@dataclass
class Track:
    """One person followed over frames.

    track_id: >= 1, unique for the tracker's lifetime.
    box: (4,) float xyxy, the last (smoothed) box.
    velocity: (4,) float change of the box per frame (constant-velocity prediction).
    hits: frames with a matched detection; misses: frames since the last one.
    """

    track_id: int
    box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    misses: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (self.misses + 1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    # few numpy calls, each on all pairs: per call overhead, not arithmetic, is the cost
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:])
                 - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def _match(tracks: list[Track], boxes: np.ndarray, min_iou: float
           ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on IoU: (track, detection) pairs with IoU >= min_iou, and the
    unmatched track and detection indices."""
    if not tracks or len(boxes) == 0:
        return [], list(range(len(tracks))), list(range(len(boxes)))
    # every track's predicted() at once
    predicted = (np.array([t.box for t in tracks]) + np.array([t.velocity for t in tracks])
                 * np.array([t.misses + 1 for t in tracks], dtype=np.float64)[:, None])
    iou = iou_matrix(predicted, boxes)
    rows, cols = linear_sum_assignment(-iou)
    pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]
    matched_t = {r for r, _ in pairs}
    matched_d = {c for _, c in pairs}
    return (pairs, [i for i in range(len(tracks)) if i not in matched_t],
            [j for j in range(len(boxes)) if j not in matched_d])


class ByteTracker:
    """Feed it each frame's detections with ``update``; it answers with their track ids."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self.tracks = []

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Per detection (in the given order) its track id, or 0 for a low-score detection
        that continues no track (drop it). ``boxes`` [N, 4] xyxy, ``scores`` [N]. Matched
        tracks take the detection's box (smoothed by ``box_smoothing``); see ``boxes_of``."""
        cfg = self.config
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        ids = np.zeros(len(boxes), dtype=np.int64)
        high = np.flatnonzero(scores >= cfg.high_threshold)
        low = np.flatnonzero((scores >= cfg.low_threshold) & (scores < cfg.high_threshold))
        pairs, left, new = _match(self.tracks, boxes[high], cfg.match_iou)
        for t, d in pairs:
            self._advance(self.tracks[t], boxes[high[d]])
            ids[high[d]] = self.tracks[t].track_id
        # Second chance for tracks that were seen last frame, with the low-score boxes.
        recent = [t for t in left if self.tracks[t].misses == 0]
        pairs_low, _, _ = _match([self.tracks[t] for t in recent], boxes[low], cfg.low_match_iou)
        continued = set()
        for k, d in pairs_low:
            track = self.tracks[recent[k]]
            self._advance(track, boxes[low[d]])
            ids[low[d]] = track.track_id
            continued.add(recent[k])
        for t in left:
            if t not in continued:
                self.tracks[t].misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= cfg.track_buffer]
        for d in new:
            track = Track(self._next_id, boxes[high[d]].copy())
            self._next_id += 1
            self.tracks.append(track)
            ids[high[d]] = track.track_id
        return ids

    def boxes_of(self, ids: np.ndarray) -> np.ndarray:
        """[len(ids), 4] the tracks' current (smoothed) boxes; NaN for id 0."""
        by_id = {t.track_id: t.box for t in self.tracks}
        return np.stack([by_id.get(int(i), np.full(4, np.nan)) for i in ids]) \
            if len(ids) else np.zeros((0, 4))

    def _advance(self, track: Track, box: np.ndarray) -> None:
        """A matched detection: new velocity (per frame, over the gap) and box."""
        frames = track.misses + 1
        alpha = self.config.box_smoothing
        new_box = alpha * track.predicted() + (1 - alpha) * box if alpha > 0 else box.copy()
        track.velocity = 0.5 * track.velocity + 0.5 * (new_box - track.box) / frames
        track.box = new_box
        track.hits += 1
        track.misses = 0


def follow(tracker: ByteTracker, result: DensePoseResult) -> tuple[DensePoseResult, np.ndarray]:
    """The persons of ``result`` to publish (in their order) and their track ids: those
    scoring at least the tracker's high threshold (the node's score_threshold keeps its
    meaning, the least score of a published person). Lower-scoring detections only keep
    their tracks alive (a person partly hidden keeps their id) and are dropped. With
    ``box_smoothing`` the persons take their tracks' smoothed boxes, and their charts are
    laid over those."""
    scores = to_numpy(result.scores)
    ids = tracker.update(to_numpy(result.boxes), scores)
    kept = (ids > 0) & (scores >= tracker.config.high_threshold)
    followed = result.select(kept)
    if tracker.config.box_smoothing > 0 and kept.any():
        smoothed = tracker.boxes_of(ids[kept])
        if isinstance(followed.boxes, np.ndarray):
            followed.boxes = smoothed.astype(followed.boxes.dtype)
        else:  # the torch backend's tensors
            import torch

            followed.boxes = torch.as_tensor(smoothed, dtype=followed.boxes.dtype)
    return followed, ids[kept]
