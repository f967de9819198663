"""Saved predictions: run a model once (``densepose eval --save-predictions``), evaluate
again later with other settings, geodesics or annotations without the model
(``densepose eval --predictions``), or evaluate outputs produced elsewhere (a robot, another
backend) written in the same layout.

One compressed ``.npz`` holds every detection of every image, the per-person IUV of
``ImagePredictions.persons`` concatenated into flat arrays:

- ``image_ids`` [M] int64: every evaluated image, including those without detections;
- ``det_image_id`` [D] int64, ``det_box`` [D, 4] float32 (x1, y1, x2, y2),
  ``det_score`` [D] float32;
- ``iuv_box`` [D, 4] int32: the integer pixel box (x0, y0, x1, y1, end exclusive) the
  person's chart covers; ``iuv_offset`` [D + 1] int64: person k's pixels are
  ``[iuv_offset[k], iuv_offset[k + 1])`` of the flat arrays, row-major over that box;
- ``labels`` uint8 (0 background, 1..24 charts), ``u`` and ``v`` float16 in [0, 1]
  (float16 keeps U/V to 2.4e-4 at 1.0, far below what GPS can resolve, at half the size);
- ``format`` (the string ``densepose_ros.predictions.v1``) and ``metadata`` (JSON text:
  weights, backend, ...).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from densepose_ros.evaluation.gps import ImagePredictions
from densepose_ros.inference.postprocess import PersonIUV

FORMAT = "densepose_ros.predictions.v1"
_ARRAYS = ("image_ids", "det_image_id", "det_box", "det_score", "iuv_box", "iuv_offset",
           "labels", "u", "v")


class PredictionFileError(ValueError):
    """A predictions file that cannot be read; the message names the file and the problem."""


def save_predictions(path: str | Path, predictions: list[ImagePredictions],
                     metadata: dict | None = None) -> Path:
    """Write `predictions` (one entry per evaluated image) to `path` (see the module doc)."""
    det_image_id, det_box, det_score, iuv_box, offsets = [], [], [], [], [0]
    labels, u, v = [], [], []
    for image in predictions:
        for box, score, person in zip(image.boxes, image.scores, image.persons, strict=True):
            det_image_id.append(image.image_id)
            det_box.append(box)
            det_score.append(score)
            iuv_box.append(person.box)
            labels.append(person.labels.reshape(-1))
            u.append(person.u.reshape(-1))
            v.append(person.v.reshape(-1))
            offsets.append(offsets[-1] + person.labels.size)

    def flat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as stream:  # a file object: numpy would append .npz to a name
        np.savez_compressed(
            stream, format=np.array(FORMAT), metadata=np.array(json.dumps(metadata or {})),
            image_ids=np.array([p.image_id for p in predictions], np.int64),
            det_image_id=np.array(det_image_id, np.int64),
            det_box=np.array(det_box, np.float32).reshape(-1, 4),
            det_score=np.array(det_score, np.float32),
            iuv_box=np.array(iuv_box, np.int32).reshape(-1, 4),
            iuv_offset=np.array(offsets, np.int64),
            labels=flat(labels, np.uint8), u=flat(u, np.float16), v=flat(v, np.float16))
    partial.replace(path)  # never a half-written file under the final name
    return path


def load_predictions(path: str | Path) -> tuple[list[ImagePredictions], dict]:
    """The predictions saved in `path`, one ``ImagePredictions`` per image in saved order,
    and the metadata. Raises ``PredictionFileError`` for a missing, corrupt or inconsistent
    file."""
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"predictions file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != FORMAT:
                raise PredictionFileError(f"{path} is not a densepose_ros predictions file "
                                          f"(format {FORMAT!r} expected)")
            missing = [name for name in _ARRAYS if name not in data]
            if missing:
                raise PredictionFileError(f"{path} lacks the arrays {', '.join(missing)}")
            arrays = {name: data[name] for name in _ARRAYS}
            metadata = json.loads(str(data["metadata"])) if "metadata" in data else {}
    except PredictionFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as error:
        raise PredictionFileError(f"cannot read predictions file {path}: {error}") from error
    return _unpack(path, arrays), metadata


def _unpack(path: Path, a: dict[str, np.ndarray]) -> list[ImagePredictions]:
    count = len(a["det_image_id"])
    offsets = a["iuv_offset"]
    boxes = a["iuv_box"].astype(np.int64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if count else boxes[:, 0]
    consistent = (
        len(a["det_box"]) == len(a["det_score"]) == len(boxes) == count
        and len(offsets) == count + 1 and offsets[0] == 0
        and np.array_equal(np.diff(offsets), areas)
        and len(a["labels"]) == len(a["u"]) == len(a["v"]) == offsets[-1]
        and np.isin(a["det_image_id"], a["image_ids"]).all()
    )
    if not consistent:
        raise PredictionFileError(f"{path}: the arrays do not fit together (truncated or "
                                  "edited file?)")
    by_image: dict[int, list[int]] = {int(i): [] for i in a["image_ids"]}
    for k, image_id in enumerate(a["det_image_id"].tolist()):
        by_image[image_id].append(k)
    predictions = []
    for image_id, rows in by_image.items():
        persons = []
        for k in rows:
            x0, y0, x1, y1 = (int(c) for c in boxes[k])
            span = slice(offsets[k], offsets[k + 1])
            shape = (y1 - y0, x1 - x0)
            persons.append(PersonIUV(
                labels=a["labels"][span].reshape(shape),
                u=a["u"][span].astype(np.float32).reshape(shape),
                v=a["v"][span].astype(np.float32).reshape(shape),
                box=(x0, y0, x1, y1), score=float(a["det_score"][k])))
        predictions.append(ImagePredictions(image_id, a["det_box"][rows], a["det_score"][rows],
                                            persons))
    return predictions
