"""Multi-object tracking metrics (MOTA, IDF1, ID switches) through ``motmetrics``.

Frames are lists of (identity, box [x1, y1, x2, y2]); a tracked box matches a true one when
their IoU is at least ``iou_threshold`` (0.5, the MOT challenge's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densepose_ros.tracking.bytetrack import iou_matrix

Frame = list[tuple[int, list[float]]]
METRICS = ("mota", "idf1", "num_switches", "precision", "recall", "num_frames",
           "num_unique_objects", "mostly_tracked", "mostly_lost", "num_false_positives",
           "num_misses")


def _accumulate(truth: list[Frame], tracked: list[Frame], iou_threshold: float):
    import motmetrics

    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for true_frame, tracked_frame in zip(truth, tracked, strict=True):
        true_boxes = np.array([b for _, b in true_frame], dtype=np.float64).reshape(-1, 4)
        tracked_boxes = np.array([b for _, b in tracked_frame], dtype=np.float64).reshape(-1, 4)
        iou = iou_matrix(true_boxes, tracked_boxes)
        distance = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        accumulator.update([i for i, _ in true_frame], [i for i, _ in tracked_frame], distance)
    return accumulator


def tracking_metrics(clips: list[tuple[list[Frame], list[Frame]]], iou_threshold: float = 0.5
                     ) -> dict[str, float]:
    """MOT metrics over all (truth, tracked) clips together (MOTA, IDF1, precision and
    recall in percent; counts as numbers)."""
    import motmetrics

    accumulators = [_accumulate(t, p, iou_threshold) for t, p in clips]
    handler = motmetrics.metrics.create()
    summary = handler.compute_many(accumulators, metrics=list(METRICS),
                                   names=[str(i) for i in range(len(accumulators))],
                                   generate_overall=True)
    overall = summary.loc["OVERALL"]
    out = {}
    for name in METRICS:
        value = float(overall[name])
        out[name] = 100.0 * value if name in ("mota", "idf1", "precision", "recall") else value
    return out


@dataclass
class TrackSummary:
    """What a tracker did on an unlabelled clip (the demo's street scene).

    tracks: distinct ids seen.
    lengths: frames each id was seen in, by id.
    suspected_switches: (frame index, ended id, new id) where a track ended and a new one
        began within ``max_gap`` frames at an overlapping place away from the image border:
        most likely one person whose id changed (check the overlay frame by eye).
    """

    tracks: int
    lengths: dict[int, int]
    suspected_switches: list[tuple[int, int, int]]


def summarise_tracks(frames: list[Frame], image_size: tuple[int, int], max_gap: int = 10,
                     min_iou: float = 0.1, border: float = 8.0) -> TrackSummary:
    """Tracks and likely ID switches of tracked frames (lists of (id, box)) without ground
    truth. A track that starts at the image border is a person entering, not a switch."""
    height, width = image_size
    first: dict[int, tuple[int, np.ndarray]] = {}
    last: dict[int, tuple[int, np.ndarray]] = {}
    lengths: dict[int, int] = {}
    for index, frame in enumerate(frames):
        for track_id, box in frame:
            box = np.asarray(box, np.float64)
            first.setdefault(track_id, (index, box))
            last[track_id] = (index, box)
            lengths[track_id] = lengths.get(track_id, 0) + 1
    switches = []
    for new_id, (start, box) in sorted(first.items(), key=lambda item: item[1][0]):
        x0, y0, x1, y1 = box
        if start == 0 or min(x0, y0, width - x1, height - y1) <= border:
            continue  # there from the start, or entering the image
        candidates = [(float(iou_matrix(box[None], old_box[None])[0, 0]), old_id)
                      for old_id, (end, old_box) in last.items()
                      if old_id != new_id and start - max_gap <= end < start]
        best = max(candidates, default=(0.0, 0))
        if best[0] >= min_iou:
            switches.append((start, best[1], new_id))
    return TrackSummary(len(lengths), lengths, switches)
