"""Reading DensePose-COCO annotation files (a COCO instances JSON with ``dp_*`` fields).

The layout is the one of the released DensePose-COCO files (``densepose_coco_2014_*.json``)
and of the synthetic set written by ``densepose synth``: COCO ``images``, ``annotations``
and ``categories``; a person annotated densely carries ``dp_x``, ``dp_y`` (box-relative
point coordinates, the box spanning 256 x 256), ``dp_I`` (chart 1..24), ``dp_U``, ``dp_V``
and ``dp_masks`` (14 COCO RLEs of 256 x 256 over the box, one per coarse part, empty
entries allowed). Persons without these fields are kept (they count for box AP and are
ignored by the dense metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Side of the square frame that dp_x, dp_y and dp_masks are expressed on.
DP_FRAME_SIZE = 256
NUM_CHARTS = 24
NUM_COARSE_PARTS = 14
_DENSE_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")


class AnnotationError(ValueError):
    """A DensePose-COCO file is missing, malformed or inconsistent."""


@dataclass
class DenseAnnotation:
    """The annotated surface points and part masks of one person.

    Attributes:
        x: [P] float32 point x on the box frame (0 = left box edge, 256 = right box edge).
        y: [P] float32 point y on the box frame (0 = top, 256 = bottom).
        part: [P] int64 chart index I of each point, 1..24.
        u: [P] float32 chart coordinate U in [0, 1].
        v: [P] float32 chart coordinate V in [0, 1].
        masks: 14 COCO RLE dicts (256 x 256 over the box) in coarse-part order, or None for
            an empty part; None for the whole list when the person has no ``dp_masks``.
    """

    x: np.ndarray
    y: np.ndarray
    part: np.ndarray
    u: np.ndarray
    v: np.ndarray
    masks: list[dict | None] | None = None

    def __len__(self) -> int:
        return int(self.part.shape[0])

    def coarse_label_map(self) -> np.ndarray:
        """[256, 256] uint8 coarse part label over the box (0 background, 1..14 parts).

        Later parts overwrite earlier ones where masks overlap, as in the original tools.
        """
        from pycocotools import mask as mask_utils

        labels = np.zeros((DP_FRAME_SIZE, DP_FRAME_SIZE), dtype=np.uint8)
        for index, rle in enumerate(self.masks or []):
            if rle is None:
                continue
            decoded = mask_utils.decode(rle)
            labels[decoded > 0] = index + 1
        return labels


@dataclass
class InstanceAnnotation:
    """One annotated object (a person) of an image.

    Attributes:
        id: the annotation id of the file.
        bbox_xywh: [4] float64 box (x, y, width, height) in image pixels.
        area: the COCO ``area`` (segment area; box area when the file has none).
        is_crowd: COCO ``iscrowd``.
        category_id: the COCO category.
        dense: the DensePose annotation, or None for a person without one.
        segmentation: the raw COCO ``segmentation`` (polygons or RLE), if any.
        keypoints: [17, 3] float32 COCO keypoints (x, y, visibility), if any.
    """

    id: int
    bbox_xywh: np.ndarray
    area: float
    is_crowd: bool
    category_id: int
    dense: DenseAnnotation | None = None
    segmentation: object = None
    keypoints: np.ndarray | None = None

    @property
    def bbox_xyxy(self) -> np.ndarray:
        x, y, w, h = self.bbox_xywh
        return np.array([x, y, x + w, y + h], dtype=np.float64)


@dataclass
class ImageRecord:
    """One image and its annotations.

    Attributes:
        id: the image id of the file.
        file_name: path of the image relative to the images directory.
        height, width: image size in pixels.
        instances: the annotations of this image (only the kept categories).
        ignore_regions: polygons (flat x0, y0, x1, y1, ... lists, image pixels) of regions
            whose persons were not annotated (``ignore_regions_x``/``_y`` of PoseTrack-style
            DensePose files); empty for COCO.
    """

    id: int
    file_name: str
    height: int
    width: int
    instances: list[InstanceAnnotation] = field(default_factory=list)
    ignore_regions: list[list[float]] = field(default_factory=list)

    def ignore_mask(self) -> np.ndarray | None:
        """[height, width] uint8 union of the ignore regions, or None without any."""
        if not self.ignore_regions:
            return None
        from pycocotools import mask as mask_utils

        rles = mask_utils.frPyObjects(self.ignore_regions, self.height, self.width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)


@dataclass
class DensePoseCocoFile:
    """A parsed DensePose-COCO annotation file.

    Attributes:
        path: where it was read from.
        images: all images of the file, in file order.
        category_ids: the kept categories (the person category).
    """

    path: Path
    images: list[ImageRecord]
    category_ids: list[int]

    @property
    def num_dense_instances(self) -> int:
        return sum(1 for im in self.images for inst in im.instances if inst.dense is not None)


def _require(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise AnnotationError(f"{where}: missing field '{key}'")
    return mapping[key]


def _parse_dense(ann: dict, where: str) -> DenseAnnotation | None:
    present = [key for key in _DENSE_KEYS if key in ann]
    if not present:
        return None
    if len(present) != len(_DENSE_KEYS):
        missing = sorted(set(_DENSE_KEYS) - set(present))
        raise AnnotationError(f"{where}: has {present} but is missing {missing}")
    arrays = {key: np.asarray(ann[key], dtype=np.float64).reshape(-1) for key in _DENSE_KEYS}
    lengths = {key: arr.shape[0] for key, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise AnnotationError(f"{where}: dp_* arrays differ in length: {lengths}")
    part = arrays["dp_I"].round().astype(np.int64)
    if part.size and (part.min() < 1 or part.max() > NUM_CHARTS):
        raise AnnotationError(f"{where}: dp_I must be in 1..{NUM_CHARTS}, got "
                              f"{part.min()}..{part.max()}")
    masks = None
    if ann.get("dp_masks") is not None:
        raw_masks = ann["dp_masks"]
        if not isinstance(raw_masks, list) or len(raw_masks) > NUM_COARSE_PARTS:
            raise AnnotationError(f"{where}: dp_masks must be a list of at most "
                                  f"{NUM_COARSE_PARTS} RLEs")
        masks = []
        for rle in raw_masks:
            if not rle:
                masks.append(None)
                continue
            if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
                raise AnnotationError(f"{where}: dp_masks entries must be COCO RLE dicts")
            counts = rle["counts"]
            masks.append({"size": list(rle["size"]),
                          "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
        masks += [None] * (NUM_COARSE_PARTS - len(masks))
    return DenseAnnotation(
        x=arrays["dp_x"].astype(np.float32), y=arrays["dp_y"].astype(np.float32), part=part,
        u=arrays["dp_U"].astype(np.float32), v=arrays["dp_V"].astype(np.float32), masks=masks)


def _person_categories(data: dict) -> list[int]:
    categories = data.get("categories") or []
    persons = [int(c["id"]) for c in categories if c.get("name") == "person"]
    if persons:
        return persons
    return sorted({int(c["id"]) for c in categories})


def parse_densepose_coco(data: dict, path: Path | str = "<memory>") -> DensePoseCocoFile:
    """Parse an already loaded DensePose-COCO dictionary (see ``load_densepose_coco``)."""
    path = Path(path)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: top level must be a JSON object")
    raw_images = _require(data, "images", str(path))
    raw_annotations = _require(data, "annotations", str(path))
    category_ids = _person_categories(data)
    keep_all = not category_ids
    images: dict[int, ImageRecord] = {}
    for k, im in enumerate(raw_images):
        where = f"{path}: images[{k}]"
        image_id = int(_require(im, "id", where))
        regions_x, regions_y = im.get("ignore_regions_x") or [], im.get("ignore_regions_y") or []
        if len(regions_x) != len(regions_y) or any(
                len(rx) != len(ry) for rx, ry in zip(regions_x, regions_y, strict=True)):
            raise AnnotationError(f"{where}: ignore_regions_x and ignore_regions_y differ")
        images[image_id] = ImageRecord(
            id=image_id, file_name=str(_require(im, "file_name", where)),
            height=int(_require(im, "height", where)), width=int(_require(im, "width", where)),
            ignore_regions=[[float(c) for xy in zip(rx, ry, strict=True) for c in xy]
                            for rx, ry in zip(regions_x, regions_y, strict=True) if len(rx) >= 3])
    for k, ann in enumerate(raw_annotations):
        where = f"{path}: annotations[{k}] (id {ann.get('id', '?')})"
        category_id = int(ann.get("category_id", 1))
        if not keep_all and category_id not in category_ids:
            continue
        image_id = int(_require(ann, "image_id", where))
        if image_id not in images:
            raise AnnotationError(f"{where}: image_id {image_id} is not in 'images'")
        bbox = np.asarray(_require(ann, "bbox", where), dtype=np.float64).reshape(-1)
        if bbox.shape[0] != 4 or bbox[2] < 0 or bbox[3] < 0:
            raise AnnotationError(f"{where}: bbox must be [x, y, w, h] with w, h >= 0")
        keypoints = ann.get("keypoints")
        instance = InstanceAnnotation(
            id=int(_require(ann, "id", where)), bbox_xywh=bbox,
            area=float(ann.get("area", bbox[2] * bbox[3])),
            is_crowd=bool(ann.get("iscrowd", 0)), category_id=category_id,
            dense=_parse_dense(ann, where), segmentation=ann.get("segmentation"),
            keypoints=(np.asarray(keypoints, dtype=np.float32).reshape(-1, 3)
                       if keypoints else None))
        images[image_id].instances.append(instance)
    return DensePoseCocoFile(path=path, images=list(images.values()),
                             category_ids=category_ids)


def load_densepose_coco(path: Path | str) -> DensePoseCocoFile:
    """Read and validate a DensePose-COCO annotation file.

    Raises:
        AnnotationError: the file is missing, is not JSON, or lacks required fields.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"annotation file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from error
    return parse_densepose_coco(data, path)
