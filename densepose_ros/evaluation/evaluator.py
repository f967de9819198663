"""DensePose evaluation: box AP, AP over GPS and GPSm, mask IoU, per-part accuracy, U/V error.

``evaluate(annotations, predictions, surface)`` works on precomputed predictions (one
``ImagePredictions`` per image, IUV at box resolution), so it runs without the model; the
``densepose eval`` command produces those predictions with the model and calls it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from densepose_ros.data.coco import NUM_CHARTS, DensePoseCocoFile, ImageRecord, InstanceAnnotation
from densepose_ros.evaluation import cocoap
from densepose_ros.evaluation.gps import (
    ImagePredictions,
    PointComparison,
    annotated_points_in_image,
    compare_points,
    locate_annotation,
    sample_prediction,
)
from densepose_ros.evaluation.keypoint_ap import KeypointAccumulator
from densepose_ros.evaluation.masks import annotation_mask, mask_iou_matrix, prediction_mask
from densepose_ros.evaluation.surface import SurfaceMetric

# Area ranges (in pixels^2) of the COCO protocols.
_ALL = (0.0, 1e5 ** 2)
BOX_AREA_RANGES = {"all": _ALL, "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                   "large": (96.0 ** 2, 1e5 ** 2)}
DENSE_AREA_RANGES = {"all": _ALL, "medium": (32.0 ** 2, 96.0 ** 2),
                     "large": (96.0 ** 2, 1e5 ** 2)}

# Readable names of the charts 1..24 (the DensePose chart list; pairs are two sides).
CHART_NAMES = (
    "torso a", "torso b", "right hand", "left hand", "left foot", "right foot",
    "upper leg right a", "upper leg left a", "upper leg right b", "upper leg left b",
    "lower leg right a", "lower leg left a", "lower leg right b", "lower leg left b",
    "upper arm left a", "upper arm right a", "upper arm left b", "upper arm right b",
    "lower arm left a", "lower arm right a", "lower arm left b", "lower arm right b",
    "head a", "head b",
)


@dataclass
class EvaluationConfig:
    """Settings of the evaluation protocol (defaults: the DensePose-COCO 2019 protocol).

    Attributes:
        dense_min_threshold: lowest GPS/GPSm threshold; thresholds run from it to 0.95 in
            steps of 0.05 (0.2 adds the 0.2..0.45 extension; headline AP uses 0.5..0.95).
        dense_max_dets: detections per image kept for the dense metrics.
        box_max_dets: detections per image kept for box AP.
        point_frame_size: divisor of dp_x/dp_y when placing points (255 as the original
            evaluator; 256 is the training convention).
        per_part_kappa: per-part GPS normalisation (2018+ protocol) or the paper's 0.255.
        diagnostic_box_iou: box IoU that pairs detections with annotated persons for the
            per-part accuracy, U/V error and mean mask IoU.
    """

    dense_min_threshold: float = 0.2
    dense_max_dets: int = 20
    box_max_dets: int = 100
    point_frame_size: float = 255.0
    per_part_kappa: bool = True
    diagnostic_box_iou: float = 0.5


@dataclass
class APSummary:
    """COCO-style summary of one similarity measure, all values on a 0-100 scale.

    Attributes:
        AP: mean AP over thresholds 0.50:0.05:0.95, all areas (-1: no ground truth).
        AP50, AP75: AP at 0.50 and 0.75.
        AP_by_area: AP (0.50:0.95) per area range name.
        AR: mean recall over 0.50:0.95; AR_by_area likewise.
        AP_by_threshold: AP at each threshold, keyed "0.20", "0.25", ...
        AP_ex: mean AP over all thresholds from the lowest (0.20:0.95 by default).
    """

    AP: float
    AP50: float
    AP75: float
    AP_by_area: dict[str, float]
    AR: float
    AR_by_area: dict[str, float]
    AP_by_threshold: dict[str, float]
    AP_ex: float


@dataclass
class DenseDiagnostics:
    """Point-level statistics over detections paired with annotated persons by box IoU.

    Attributes:
        pairs: number of (detection, annotated person) pairs.
        points: number of annotated points in those pairs.
        point_accuracy: % of points whose predicted chart equals the annotated chart.
        per_part_accuracy: that % per annotated chart name (None: no point of that chart).
        u_error, v_error: mean |predicted - annotated| U and V over correctly charted points.
        mean_gps: mean GPS of the pairs (None without a surface metric).
        mean_mask_iou: mean IoU (%) of predicted and annotated person masks over the pairs.
    """

    pairs: int = 0
    points: int = 0
    point_accuracy: float | None = None
    per_part_accuracy: dict[str, float | None] = field(default_factory=dict)
    u_error: float | None = None
    v_error: float | None = None
    mean_gps: float | None = None
    mean_mask_iou: float | None = None


@dataclass
class EvaluationReport:
    """Everything ``densepose eval`` reports (AP values 0-100; -1 when not computable).

    Attributes:
        box_AP: box AP 0.50:0.95 (COCO bbox protocol, 100 detections).
        AP_GPS, AP_GPSm: AP over GPS / GPSm 0.50:0.95 (20 detections); None without a
            surface metric.
        box, gps, gpsm: the full summaries.
        diagnostics: point-level accuracy, U/V error, mask IoU.
        num_images, num_persons, num_dense_persons, num_detections: counts.
        settings: the ``EvaluationConfig`` used and the surface metric's name.
        keypoints: COCO keypoint AP/AR (OKS, pycocotools) for models with a keypoint head
            on data with keypoints; empty otherwise.
    """

    box_AP: float
    AP_GPS: float | None
    AP_GPSm: float | None
    box: APSummary
    gps: APSummary | None
    gpsm: APSummary | None
    diagnostics: DenseDiagnostics
    num_images: int
    num_persons: int
    num_dense_persons: int
    num_detections: int
    settings: dict
    keypoints: dict = field(default_factory=dict)

    @property
    def keypoint_AP(self) -> float | None:
        return self.keypoints.get("AP")

    def to_dict(self) -> dict:
        return asdict(self)


def _pct(value: float) -> float:
    return -1.0 if value < 0 else 100.0 * value


def _summarize(matches_by_area: dict[str, list[cocoap.ImageMatches]],
               thresholds: np.ndarray) -> APSummary:
    results = {name: cocoap.accumulate(m, len(thresholds)) for name, m in
               matches_by_area.items()}
    main = np.flatnonzero(thresholds >= 0.5 - 1e-9)
    at = {f"{t:.2f}": _pct(results["all"].average_precision(np.array([k])))
          for k, t in enumerate(thresholds)}
    return APSummary(
        AP=_pct(results["all"].average_precision(main)),
        AP50=at.get("0.50", -1.0), AP75=at.get("0.75", -1.0),
        AP_by_area={name: _pct(r.average_precision(main)) for name, r in results.items()
                    if name != "all"},
        AR=_pct(results["all"].average_recall(main)),
        AR_by_area={name: _pct(r.average_recall(main)) for name, r in results.items()
                    if name != "all"},
        AP_by_threshold=at, AP_ex=_pct(results["all"].average_precision()))


@dataclass
class _DiagnosticsAccumulator:
    part_total: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CHARTS + 1))
    part_correct: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CHARTS + 1))
    u_abs: list = field(default_factory=list)
    v_abs: list = field(default_factory=list)
    gps: list = field(default_factory=list)
    mask_iou: list = field(default_factory=list)
    pairs: int = 0

    def add(self, gt_part, pred_part, gt_u, gt_v, pred_u, pred_v, gps, mask_iou) -> None:
        self.pairs += 1
        np.add.at(self.part_total, gt_part, 1)
        correct = pred_part == gt_part
        np.add.at(self.part_correct, gt_part[correct], 1)
        self.u_abs.append(np.abs(pred_u[correct] - gt_u[correct]))
        self.v_abs.append(np.abs(pred_v[correct] - gt_v[correct]))
        if gps is not None:
            self.gps.append(gps)
        self.mask_iou.append(mask_iou)

    def result(self) -> DenseDiagnostics:
        points = int(self.part_total.sum())
        u_abs = np.concatenate(self.u_abs) if self.u_abs else np.zeros(0)
        v_abs = np.concatenate(self.v_abs) if self.v_abs else np.zeros(0)
        per_part = {
            CHART_NAMES[k - 1]: (100.0 * self.part_correct[k] / self.part_total[k]
                                 if self.part_total[k] else None)
            for k in range(1, NUM_CHARTS + 1)}
        return DenseDiagnostics(
            pairs=self.pairs, points=points,
            point_accuracy=100.0 * self.part_correct.sum() / points if points else None,
            per_part_accuracy=per_part,
            u_error=float(u_abs.mean()) if u_abs.size else None,
            v_error=float(v_abs.mean()) if v_abs.size else None,
            mean_gps=float(np.mean(self.gps)) if self.gps else None,
            mean_mask_iou=100.0 * float(np.mean(self.mask_iou)) if self.mask_iou else None)


def _box_iou(dt_xyxy: np.ndarray, gt_xywh: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    if not len(dt_xyxy) or not len(gt_xywh):
        return np.zeros((len(dt_xyxy), len(gt_xywh)))
    dt_xywh = np.concatenate([dt_xyxy[:, :2], dt_xyxy[:, 2:] - dt_xyxy[:, :2]], axis=1)
    ious = mask_utils.iou(dt_xywh.tolist(), gt_xywh.tolist(), [int(c) for c in gt_crowd])
    return np.asarray(ious, dtype=np.float64).reshape(len(dt_xyxy), len(gt_xywh))


# Ignore-region rules of the DensePose evaluator: an annotated person whose box lies mostly
# in an ignore region is dropped, and so is a detection whose foreground nearly coincides
# with the ignore region inside its box.
IGNORE_BOX_FRACTION = 0.7
IGNORE_MASK_IOU = 0.9


def _box_mostly_ignored(bbox_xywh: np.ndarray, ignore: np.ndarray) -> bool:
    x, y, w, h = (int(c) for c in bbox_xywh)
    if w * h == 0:
        return True
    crop = ignore[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)]
    return crop.sum() / (w * h) >= IGNORE_BOX_FRACTION


def _detection_ignored(mask: np.ndarray, box: tuple[int, int, int, int],
                       ignore: np.ndarray) -> bool:
    x0, y0, x1, y1 = (max(int(c), 0) for c in box)
    crop_ignore = ignore[y0:y1, x0:x1] > 0
    if not crop_ignore.any():
        return False
    crop_mask = mask[y0:y1, x0:x1] > 0
    union = np.logical_or(crop_mask, crop_ignore).sum()
    return union > 0 and np.logical_and(crop_mask, crop_ignore).sum() / union >= IGNORE_MASK_IOU


def _greedy_pairs(box_iou: np.ndarray, eligible: np.ndarray, min_iou: float) -> list[tuple]:
    """(detection, annotation) pairs: detections in score order take the free best box."""
    pairs, taken = [], np.zeros(box_iou.shape[1], bool)
    for d in range(box_iou.shape[0]):
        candidates = np.where(eligible & ~taken, box_iou[d], -1.0)
        if candidates.size and candidates.max() >= min_iou:
            g = int(np.argmax(candidates))
            taken[g] = True
            pairs.append((d, g))
    return pairs


@dataclass
class _DenseInputs:
    """One image's detections (score order) and annotated persons as the dense metrics see
    them: at most ``dense_max_dets`` detections, less those left out by ignore regions."""

    gts: list[InstanceAnnotation]
    gt_crowd: np.ndarray
    gt_area: np.ndarray
    persons: list
    scores: np.ndarray
    dt_area: np.ndarray
    box_iou: np.ndarray
    dt_masks: list[np.ndarray]


def _dense_inputs(image: ImageRecord, gts: list[InstanceAnnotation], gt_crowd: np.ndarray,
                  gt_area: np.ndarray, persons: list, scores: np.ndarray, dt_area: np.ndarray,
                  box_iou: np.ndarray, max_dets: int) -> _DenseInputs:
    """The top ``max_dets`` detections and the annotated persons, less the persons whose box
    lies mostly in an ignore region and the detections that cover one."""
    keep = min(len(scores), max_dets)
    persons, scores, dt_area, box_iou = (persons[:keep], scores[:keep], dt_area[:keep],
                                         box_iou[:keep])
    dt_masks = [prediction_mask(p, image.height, image.width) for p in persons]
    ignore = image.ignore_mask()
    if ignore is None:
        return _DenseInputs(gts, gt_crowd, gt_area, persons, scores, dt_area, box_iou, dt_masks)
    gt_kept = np.array([not _box_mostly_ignored(g.bbox_xywh, ignore) for g in gts], bool)
    dt_kept = np.array([not _detection_ignored(m, p.box, ignore)
                        for m, p in zip(dt_masks, persons, strict=True)], bool)
    dt_index = np.flatnonzero(dt_kept)
    return _DenseInputs(
        gts=[g for g, k in zip(gts, gt_kept, strict=True) if k],
        gt_crowd=gt_crowd[gt_kept], gt_area=gt_area[gt_kept],
        persons=[persons[k] for k in dt_index], scores=scores[dt_index],
        dt_area=dt_area[dt_index], box_iou=box_iou[dt_index][:, gt_kept],
        dt_masks=[dt_masks[k] for k in dt_index])


class DensePoseEvaluator:
    """Accumulates per-image matches; ``report()`` summarizes them."""

    def __init__(self, surface: SurfaceMetric | None, config: EvaluationConfig | None = None,
                 surface_name: str = "") -> None:
        self.surface = surface
        self.config = config or EvaluationConfig()
        self.surface_name = surface_name
        self.dense_thresholds = cocoap.thresholds(self.config.dense_min_threshold)
        self.box_thresholds = cocoap.thresholds(0.5)
        self._box = {name: [] for name in BOX_AREA_RANGES}
        self._gps = {name: [] for name in DENSE_AREA_RANGES}
        self._gpsm = {name: [] for name in DENSE_AREA_RANGES}
        self._diagnostics = _DiagnosticsAccumulator()
        self._counts = {"images": 0, "persons": 0, "dense_persons": 0, "detections": 0}
        self._keypoints = KeypointAccumulator()

    def add_image(self, image: ImageRecord, prediction: ImagePredictions) -> None:
        """Match one image's detections with its annotated persons for every metric."""
        gts = image.instances
        order = np.argsort(-prediction.scores, kind="stable")
        boxes, scores = prediction.boxes[order], prediction.scores[order]
        persons = [prediction.persons[k] for k in order]
        self._counts["images"] += 1
        self._counts["persons"] += sum(not g.is_crowd for g in gts)
        self._counts["detections"] += len(boxes)
        if prediction.keypoints is not None:
            self._keypoints.add(image.id, image.height, image.width, gts, boxes, scores,
                                prediction.keypoints[order])
        gt_crowd, gt_area, dt_area, box_iou = self._add_box_matches(gts, boxes, scores)

        # Dense metrics use the top detections only, and leave out ignore regions.
        inputs = _dense_inputs(image, gts, gt_crowd, gt_area, persons, scores, dt_area, box_iou,
                               self.config.dense_max_dets)
        is_dense = np.array([(g.dense is not None and len(g.dense) > 0 and not g.is_crowd)
                             for g in inputs.gts], dtype=bool)
        self._counts["dense_persons"] += int(is_dense.sum())
        gt_masks = [annotation_mask(g, image.height, image.width) for g in inputs.gts]
        mask_iou = mask_iou_matrix(inputs.dt_masks, gt_masks, inputs.gt_crowd)
        comparisons = self._add_dense_matches(inputs, is_dense, mask_iou)
        self._add_diagnostics(inputs, is_dense, mask_iou, comparisons)

    def _add_box_matches(self, gts: list[InstanceAnnotation], boxes: np.ndarray,
                         scores: np.ndarray) -> tuple[np.ndarray, ...]:
        """Box AP matches of one image's detections (score order) per area range; returns
        the persons' crowd flags and areas, the detections' box areas and the box IoUs."""
        gt_xywh = np.array([g.bbox_xywh for g in gts], dtype=np.float64).reshape(-1, 4)
        gt_crowd = np.array([g.is_crowd for g in gts], dtype=bool)
        gt_area = np.array([g.area for g in gts], dtype=np.float64)
        dt_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        box_iou = _box_iou(boxes, gt_xywh, gt_crowd)
        box_input = cocoap.ImageEvalInput(box_iou, scores, dt_area, gt_area, gt_crowd, gt_crowd)
        for name, area_range in BOX_AREA_RANGES.items():
            self._box[name].append(cocoap.match_image(
                box_input, self.box_thresholds, area_range, self.config.box_max_dets))
        return gt_crowd, gt_area, dt_area, box_iou

    def _add_dense_matches(self, inputs: _DenseInputs, is_dense: np.ndarray,
                           mask_iou: np.ndarray) -> dict[tuple[int, int], PointComparison]:
        """GPS and GPSm matches of one image per area range (none without a surface metric);
        returns the point comparison of each (detection, dense person) pair."""
        cfg = self.config
        comparisons: dict[tuple[int, int], PointComparison] = {}
        if self.surface is None:
            return comparisons
        gps = np.zeros((len(inputs.persons), len(inputs.gts)))
        for g in np.flatnonzero(is_dense):
            gt_ids = locate_annotation(inputs.gts[g], self.surface)
            for d in range(len(inputs.persons)):
                comparison = compare_points(inputs.gts[g], gt_ids, inputs.persons[d], self.surface,
                                            cfg.point_frame_size, cfg.per_part_kappa)
                comparisons[d, g] = comparison
                gps[d, g] = comparison.gps
        gpsm = np.sqrt(gps * mask_iou)
        for similarity, store in ((gps, self._gps), (gpsm, self._gpsm)):
            dense_input = cocoap.ImageEvalInput(similarity, inputs.scores, inputs.dt_area,
                                                inputs.gt_area, ~is_dense, inputs.gt_crowd,
                                                inputs.box_iou)
            for name, area_range in DENSE_AREA_RANGES.items():
                store[name].append(cocoap.match_image(
                    dense_input, self.dense_thresholds, area_range, cfg.dense_max_dets,
                    dense_rules=True))
        return comparisons

    def _add_diagnostics(self, inputs: _DenseInputs, is_dense: np.ndarray, mask_iou: np.ndarray,
                         comparisons: dict[tuple[int, int], PointComparison]) -> None:
        """Point-level statistics of the detections paired with dense persons by box IoU
        (reusing the GPS comparisons where there are some)."""
        cfg = self.config
        for d, g in _greedy_pairs(inputs.box_iou, is_dense, cfg.diagnostic_box_iou):
            dense = inputs.gts[g].dense
            if (d, g) in comparisons:
                c = comparisons[d, g]
                pred_part, pred_u, pred_v, pair_gps = c.pred_part, c.pred_u, c.pred_v, c.gps
            else:
                x, y = annotated_points_in_image(inputs.gts[g], cfg.point_frame_size)
                pred_part, pred_u, pred_v = sample_prediction(inputs.persons[d], x, y)
                pair_gps = None
            self._diagnostics.add(dense.part, pred_part, dense.u, dense.v, pred_u, pred_v,
                                  pair_gps, mask_iou[d, g])

    def report(self) -> EvaluationReport:
        box = _summarize(self._box, self.box_thresholds)
        gps = gpsm = None
        if self.surface is not None:
            gps = _summarize(self._gps, self.dense_thresholds)
            gpsm = _summarize(self._gpsm, self.dense_thresholds)
        settings = asdict(self.config)
        settings["surface"] = self.surface_name
        return EvaluationReport(
            box_AP=box.AP, AP_GPS=gps.AP if gps else None, AP_GPSm=gpsm.AP if gpsm else None,
            box=box, gps=gps, gpsm=gpsm, diagnostics=self._diagnostics.result(),
            num_images=self._counts["images"], num_persons=self._counts["persons"],
            num_dense_persons=self._counts["dense_persons"],
            num_detections=self._counts["detections"], settings=settings,
            keypoints=self._keypoints.result())


def evaluate(annotations: DensePoseCocoFile, predictions: list[ImagePredictions],
             surface: SurfaceMetric | None, config: EvaluationConfig | None = None,
             surface_name: str = "", progress: bool = True) -> EvaluationReport:
    """Evaluate precomputed predictions against an annotation file.

    Images of the file without an entry in ``predictions`` count as having no detections;
    a prediction for an image id absent from the file is an error.
    """
    by_id = {image.id: image for image in annotations.images}
    predicted: dict[int, ImagePredictions] = {}
    for prediction in predictions:
        if prediction.image_id not in by_id:
            raise ValueError(f"prediction for image id {prediction.image_id}, which is not "
                             f"in {annotations.path}")
        predicted[prediction.image_id] = prediction
    evaluator = DensePoseEvaluator(surface, config, surface_name)
    for image in tqdm(annotations.images, desc="evaluating", unit="img", disable=not progress):
        prediction = predicted.get(image.id) or ImagePredictions(
            image.id, np.zeros((0, 4)), np.zeros(0), [])
        evaluator.add_image(image, prediction)
    return evaluator.report()


def _pct_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def format_report(report: EvaluationReport) -> str:
    """A readable table of the report."""
    def fmt(value) -> str:
        return "   n/a" if value is None or value < 0 else f"{value:6.2f}"

    lines = ["metric      AP     AP50   AP75   APm    APl    AR     APex   AP20   AP30   AP40"]
    for name, summary in (("box", report.box), ("GPS", report.gps), ("GPSm", report.gpsm)):
        if summary is None:
            lines.append(f"{name:<8} (no surface metric given)")
            continue
        at = summary.AP_by_threshold
        dense = name != "box"
        lines.append(
            f"{name:<8}" + " ".join(fmt(v) for v in (
                summary.AP, summary.AP50, summary.AP75, summary.AP_by_area.get("medium"),
                summary.AP_by_area.get("large"), summary.AR,
                summary.AP_ex if dense else None, at.get("0.20"), at.get("0.30"),
                at.get("0.40"))))
    if report.keypoints:
        kp = report.keypoints
        lines.append("keypoint" + " ".join(fmt(kp.get(k)) for k in (
            "AP", "AP50", "AP75", "AP_medium", "AP_large", "AR")) + "   (OKS, COCOeval)")
    diag = report.diagnostics
    lines += ["", f"images {report.num_images}, persons {report.num_persons} "
              f"({report.num_dense_persons} with DensePose points), detections "
              f"{report.num_detections}",
              f"paired detections {diag.pairs}, points {diag.points}: part accuracy "
              f"{_pct_text(diag.point_accuracy)}, U error {fmt(diag.u_error).strip()}, "
              f"V error {fmt(diag.v_error).strip()}, mask IoU {_pct_text(diag.mean_mask_iou)}, "
              f"mean GPS {fmt(diag.mean_gps).strip()}"]
    if diag.points:
        lines.append("per-part accuracy (%):")
        items = list(diag.per_part_accuracy.items())
        for k in range(0, len(items), 4):
            lines.append("  " + "  ".join(f"{n:<18}{fmt(v)}" for n, v in items[k:k + 4]))
    return "\n".join(lines)
