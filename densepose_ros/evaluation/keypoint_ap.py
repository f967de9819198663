"""Keypoint AP (COCO's OKS protocol) through pycocotools' COCOeval.

``KeypointAccumulator`` collects each image's annotated keypoints and the predicted ones;
``result()`` builds the two COCO structures in memory and runs COCOeval with
``iouType="keypoints"`` (COCO's 17 per-keypoint sigmas, 20 detections per image, areas
all/medium/large), so the number is COCO's own.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from densepose_ros.data.coco import InstanceAnnotation

NUM_KEYPOINTS = 17
_STAT_NAMES = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75",
               "AR_medium", "AR_large")


@dataclass
class KeypointAccumulator:
    """Annotated and predicted keypoints of every image added (see the module docstring)."""

    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    detections: list[dict] = field(default_factory=list)

    def add(self, image_id: int, height: int, width: int, gts: list[InstanceAnnotation],
            boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray) -> None:
        """One image: its persons and the detections' boxes [N, 4] xyxy, scores [N] and
        keypoints [N, 17, 3] (x, y, score) in image pixels."""
        self.images.append({"id": int(image_id), "height": int(height), "width": int(width)})
        for g in gts:
            kps = (np.zeros((NUM_KEYPOINTS, 3)) if g.keypoints is None
                   else np.asarray(g.keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 3))
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": int(image_id), "category_id": 1,
                "bbox": [float(v) for v in g.bbox_xywh], "area": float(g.area),
                "iscrowd": int(g.is_crowd), "keypoints": kps.flatten().tolist(),
                "num_keypoints": int((kps[:, 2] > 0).sum()),
            })
        for box, score, kps in zip(boxes, scores, keypoints, strict=True):
            points = np.asarray(kps, dtype=np.float64).copy()
            points[:, 2] = 1.0  # COCOeval ignores predicted visibility; the score is per person
            x1, y1, x2, y2 = (float(v) for v in box)
            self.detections.append({
                "image_id": int(image_id), "category_id": 1, "score": float(score),
                "keypoints": points.flatten().tolist(), "bbox": [x1, y1, x2 - x1, y2 - y1],
            })

    def result(self) -> dict[str, float]:
        """COCO's keypoint AP/AR summary (0-100; -1 where COCOeval has none), or {} when no
        image had a person with keypoints or no detection was added."""
        with_keypoints = [a for a in self.annotations if a["num_keypoints"] > 0]
        if not with_keypoints or not self.detections:
            return {}
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
            truth = COCO()
            truth.dataset = {
                "images": self.images, "annotations": self.annotations,
                "categories": [{"id": 1, "name": "person"}]}
            truth.createIndex()
            predicted = truth.loadRes(self.detections)
            evaluation = COCOeval(truth, predicted, iouType="keypoints")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return {name: (-1.0 if value < 0 else 100.0 * float(value))
                for name, value in zip(_STAT_NAMES, evaluation.stats, strict=True)}
