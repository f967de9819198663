"""Person masks for GPSm: annotation masks against pycocotools, prediction masks placed."""

from __future__ import annotations

import numpy as np
from eval_fixtures import coco_file, iuv_for, person_annotation
from pycocotools.coco import COCO

from densepose_ros.data.coco import parse_densepose_coco
from densepose_ros.evaluation.masks import annotation_mask, prediction_mask


def test_segmentation_fallback_matches_pycocotools():
    polygon = person_annotation(1, 1, [10, 10, 30, 40], None)
    polygon["segmentation"] = [[10, 10, 40, 12, 35, 50, 12, 45]]
    rle = person_annotation(2, 1, [50, 5, 20, 20], None)
    square = np.zeros((80, 100), np.uint8)
    square[5:25, 50:70] = 1
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(square))
    rle["segmentation"] = {"size": encoded["size"], "counts": encoded["counts"].decode()}
    data = coco_file([(1, 80, 100)], [polygon, rle])
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    instances = parse_densepose_coco(data).images[0].instances
    for inst in instances:
        expected = coco.annToMask(coco.anns[inst.id])
        assert (annotation_mask(inst, 80, 100) == expected).all()


def test_dp_masks_fill_the_box_and_prediction_masks_sit_on_their_box():
    inst = parse_densepose_coco(coco_file(
        [(1, 80, 100)], [person_annotation(1, 1, [10, 20, 30, 40], [(1, 1, 1, 0.5, 0.5)])]
    )).images[0].instances[0]
    mask = annotation_mask(inst, 80, 100)
    assert mask[20:60, 10:40].all() and mask.sum() == 30 * 40
    person = iuv_for([90, 70, 20, 20], [], fill_part=2)  # runs past the image edge
    placed = prediction_mask(person, 80, 100)
    assert placed[70:80, 90:100].all() and placed.sum() == 100
