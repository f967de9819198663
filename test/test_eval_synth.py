"""End to end on rendered synthetic data: its exact label maps, as predictions, score 100."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from densepose_ros.data.coco import load_densepose_coco
from densepose_ros.data.dataset import DatasetSpec, DensePoseCocoDataset
from densepose_ros.evaluation import EvaluationConfig, ImagePredictions, evaluate
from densepose_ros.inference.postprocess import PersonIUV

synth_scene = pytest.importorskip("densepose_ros.synth.scene")
synth_writer = pytest.importorskip("densepose_ros.synth.writer")


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_eval")
    scene = dataclasses.replace(synth_scene.SceneConfig(), width=240, height=180,
                                persons=(2, 2), distance_m=(2.5, 4.0))
    config = synth_writer.WriterConfig(num_images=2, seed=5, workers=1, save_maps=True,
                                       preview_images=0, scene=scene)
    synth_writer.write_dataset(out, config, progress=False)
    return out


def _exact_predictions(root, annotations):
    """Per annotated person: its rendered part/U/V maps cropped to its box."""
    predictions = []
    for record in annotations.images:
        with np.load(root / "maps" / (record.file_name.rsplit(".", 1)[0] + ".npz")) as maps:
            part, u, v, instance = (maps[k] for k in ("part", "u", "v", "instance"))
        boxes, persons = [], []
        for inst in record.instances:
            mask = mask_utils.decode(inst.segmentation) > 0
            person = np.bincount(instance[mask]).argmax()  # the rendered instance id
            x, y, w, h = (int(c) for c in inst.bbox_xywh)
            own = (instance == person)[y:y + h, x:x + w]
            persons.append(PersonIUV(
                labels=(part[y:y + h, x:x + w] * own).astype(np.uint8),
                u=(u[y:y + h, x:x + w] * own).astype(np.float32),
                v=(v[y:y + h, x:x + w] * own).astype(np.float32), box=(x, y, x + w, y + h),
                score=1.0))
            boxes.append([x, y, x + w, y + h])
        predictions.append(ImagePredictions(record.id, np.array(boxes).reshape(-1, 4),
                                            np.linspace(1.0, 0.5, len(boxes)), persons))
    return predictions


def test_exact_label_maps_score_100_on_anny(synth_set):
    from densepose_ros.evaluation.surface import load_surface_metric

    annotations = load_densepose_coco(synth_set / "annotations.json")
    assert annotations.num_dense_instances >= 2
    predictions = _exact_predictions(synth_set, annotations)
    # The writer places points at pixel centres on the 256 frame.
    report = evaluate(annotations, predictions, load_surface_metric("anny"),
                      EvaluationConfig(point_frame_size=256.0), progress=False)
    assert report.box_AP == pytest.approx(100.0)
    assert report.AP_GPS == pytest.approx(100.0)
    assert report.diagnostics.point_accuracy == pytest.approx(100.0)
    assert report.diagnostics.u_error < 1e-5
    # The annotated masks are dp_masks resized back to the box: nearly the exact silhouette,
    # so GPSm = sqrt(IoU) clears even the 0.95 threshold (IoU >= 0.9025).
    assert report.diagnostics.mean_mask_iou > 95.0
    assert report.AP_GPSm == pytest.approx(100.0)


def test_synthetic_set_loads_for_training(synth_set):
    dataset = DensePoseCocoDataset(DatasetSpec(synth_set / "annotations.json", symmetry="anny"))
    sample = dataset[0]
    assert sample.image.ndim == 3 and min(sample.image.shape[:2]) in (640, 672, 704, 736,
                                                                     768, 800)
    dense = [inst.dense for inst in sample.instances if inst.dense is not None]
    assert dense and all(d.segm is not None and (d.segm > 0).any() for d in dense)
