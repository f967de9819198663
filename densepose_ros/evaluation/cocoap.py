"""COCO-style average precision over any detection-to-ground-truth similarity.

One engine for box AP (similarity = box IoU), AP over GPS and over GPSm: per image, the
detections (highest score first, at most ``max_dets``) are greedily matched to the
unmatched ground truth of highest similarity at or above each threshold; crowd ground truth
may take several detections; detections matched to ignored ground truth are ignored, and
so are unmatched detections outside the area range. Precision is then interpolated at 101
recall points and averaged, as in the COCO protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
# Box-overlap at which an otherwise unmatched detection of a person that has no dense
# annotation is ignored rather than counted as a false positive (DensePose protocol).
DENSE_IGNORE_BOX_IOU = 0.8


def thresholds(start: float, stop: float = 0.95, step: float = 0.05) -> np.ndarray:
    """Similarity thresholds start:step:stop, computed without floating-point drift."""
    count = int(np.round((stop - start) / step)) + 1
    return np.round(np.linspace(start, stop, count), 10)


@dataclass
class ImageEvalInput:
    """Detections and ground truth of one image, for one similarity measure.

    Attributes:
        similarity: [D, G] similarity of detection d and ground truth g (IoU, GPS, GPSm).
        scores: [D] detection confidences.
        dt_area: [D] detection areas (for the area ranges).
        gt_area: [G] ground-truth areas.
        gt_ignore: [G] bool, ground truth that must not count (crowd, not annotated).
        gt_crowd: [G] bool, crowd regions (may be matched by several detections).
        box_iou: [D, G] box IoU, only for the dense protocol's ignore rule (else None).
    """

    similarity: np.ndarray
    scores: np.ndarray
    dt_area: np.ndarray
    gt_area: np.ndarray
    gt_ignore: np.ndarray
    gt_crowd: np.ndarray
    box_iou: np.ndarray | None = None


@dataclass
class ImageMatches:
    """Matching outcome of one image at T thresholds (detections sorted by score).

    Attributes:
        scores: [D'] scores of the kept detections (D' <= max_dets), highest first.
        matched: [T, D'] bool, detection matched to a ground truth at threshold t.
        ignored: [T, D'] bool, detection left out of precision at threshold t.
        num_positive: number of ground truths that count (not ignored, in the area range).
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    num_positive: int


def match_image(inp: ImageEvalInput, thresholds_: np.ndarray, area_range: tuple[float, float],
                max_dets: int, dense_rules: bool = False) -> ImageMatches:
    """Greedy COCO matching of one image.

    ``dense_rules`` adds the DensePose protocol's two rules: an image whose ground truth is
    all ignored has all its detections ignored, and a detection left unmatched whose best
    box IoU (>= 0.8) is with an ignored, unmatched ground truth is ignored. (Detections on
    an image without any ground truth stay false positives, unlike detectron2, where the
    first rule ignores them too.)
    """
    num_t = len(thresholds_)
    gt_ignore = (np.asarray(inp.gt_ignore, bool)
                 | (inp.gt_area < area_range[0]) | (inp.gt_area > area_range[1]))
    gt_order = np.argsort(gt_ignore, kind="stable")  # counted ground truth first
    gt_ignore = gt_ignore[gt_order]
    gt_crowd = np.asarray(inp.gt_crowd, bool)[gt_order]
    dt_order = np.argsort(-np.asarray(inp.scores, np.float64), kind="stable")[:max_dets]
    num_d, num_g = len(dt_order), len(gt_order)
    shape = (len(inp.scores), num_g)
    similarity = np.asarray(inp.similarity, np.float64).reshape(shape)[dt_order][:, gt_order]
    gt_taken = np.zeros((num_t, num_g), bool)
    matched = np.zeros((num_t, num_d), bool)
    ignored = np.zeros((num_t, num_d), bool)
    if dense_rules and num_g and gt_ignore.all():
        ignored[:] = True
    for t, threshold in enumerate(thresholds_):
        for d in range(num_d):
            best, best_g = min(threshold, 1 - 1e-10), -1
            for g in range(num_g):
                if gt_taken[t, g] and not gt_crowd[g]:
                    continue
                # Once matched to counted ground truth, never switch to ignored ground truth.
                if best_g > -1 and not gt_ignore[best_g] and gt_ignore[g]:
                    break
                if similarity[d, g] < best or similarity[d, g] <= 0.0:
                    continue
                best, best_g = similarity[d, g], g
            if best_g == -1:
                continue
            matched[t, d] = True
            ignored[t, d] = gt_ignore[best_g]
            gt_taken[t, best_g] = True
        if dense_rules and inp.box_iou is not None and num_g:
            box_iou = np.asarray(inp.box_iou, np.float64).reshape(shape)[dt_order][:, gt_order]
            for d in np.flatnonzero(~matched[t]):
                free = ~gt_taken[t] | gt_crowd
                candidates = np.where(free, box_iou[d], -1.0)
                g = int(np.argmax(candidates))
                if candidates[g] >= DENSE_IGNORE_BOX_IOU and gt_ignore[g]:
                    ignored[t, d] = True
    dt_area = np.asarray(inp.dt_area, np.float64)[dt_order]
    outside = (dt_area < area_range[0]) | (dt_area > area_range[1])
    ignored |= ~matched & outside[None, :]
    return ImageMatches(scores=np.asarray(inp.scores, np.float64)[dt_order], matched=matched,
                        ignored=ignored, num_positive=int((~gt_ignore).sum()))


@dataclass
class PrecisionRecall:
    """Accumulated precision and recall over a set of images.

    Attributes:
        precision: [T, R] interpolated precision at each threshold and recall point, or
            all -1 when no ground truth counts.
        recall: [T] maximum recall at each threshold (-1 when no ground truth counts).
    """

    precision: np.ndarray
    recall: np.ndarray

    def average_precision(self, rows: np.ndarray | slice = slice(None)) -> float:
        """Mean precision over the selected thresholds, 0..1; -1 without ground truth."""
        values = self.precision[rows]
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    def average_recall(self, rows: np.ndarray | slice = slice(None)) -> float:
        values = np.atleast_1d(self.recall[rows])
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0


def accumulate(matches: list[ImageMatches], num_thresholds: int,
               recall_thresholds: np.ndarray = RECALL_THRESHOLDS) -> PrecisionRecall:
    """Precision/recall over all images, detections ranked by score across images."""
    precision = -np.ones((num_thresholds, len(recall_thresholds)))
    recall = -np.ones(num_thresholds)
    num_positive = sum(m.num_positive for m in matches)
    if num_positive == 0:
        return PrecisionRecall(precision, recall)
    scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m.matched for m in matches], axis=1)[:, order]
    ignored = np.concatenate([m.ignored for m in matches], axis=1)[:, order]
    true_pos = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    false_pos = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    for t in range(num_thresholds):
        tp, fp = true_pos[t], false_pos[t]
        num_d = tp.shape[0]
        rc = tp / num_positive
        pr = tp / (tp + fp + np.spacing(1))
        recall[t] = rc[-1] if num_d else 0.0
        # Precision envelope: the best precision at any recall at or beyond this one.
        pr = np.maximum.accumulate(pr[::-1])[::-1] if num_d else pr
        q = np.zeros(len(recall_thresholds))
        positions = np.searchsorted(rc, recall_thresholds, side="left")
        valid = positions < num_d
        q[valid] = pr[positions[valid]]
        precision[t] = q
    return PrecisionRecall(precision, recall)
