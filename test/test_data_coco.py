"""DensePose-COCO loading: parsing, errors, RLE part masks, datasets, mixing, batching."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
import torch
from eval_fixtures import coco_file, person_annotation
from pycocotools import mask as mask_utils

from densepose_ros.data.batching import collate_samples
from densepose_ros.data.coco import AnnotationError, load_densepose_coco, parse_densepose_coco
from densepose_ros.data.dataset import DatasetSpec, DensePoseCocoDataset, MixedDataset
from densepose_ros.data.transforms import AugmentationConfig
from densepose_ros.modeling.config import InputConfig

POINTS = [(1, 2, 3, 0.25, 0.5), (10, 20, 1, 0.75, 0.125)]


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _write_dataset(tmp_path, annotations, images=((1, 60, 80),)):
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    for image_id, h, w in images:
        pixels = np.full((h, w, 3), 40, np.uint8)
        pixels[5, 7] = (10, 200, 90)  # a marked pixel
        cv2.imwrite(str(image_dir / f"{image_id:06d}.png"), pixels)
    data = coco_file(list(images), annotations)
    for im in data["images"]:
        im["file_name"] = f"{im['id']:06d}.png"
    path = tmp_path / "dp.json"
    path.write_text(json.dumps(data))
    return path, image_dir


def test_parse_fields_and_part_masks():
    ann = person_annotation(5, 1, [10, 20, 40, 50], POINTS, masks=False)
    left_half = np.zeros((256, 256), np.uint8)
    left_half[:, :128] = 1
    top = np.zeros((256, 256), np.uint8)
    top[:64] = 1
    ann["dp_masks"] = [_rle(left_half), [], _rle(top)] + [[]] * 11
    parsed = parse_densepose_coco(coco_file([(1, 100, 100)], [ann]))
    inst = parsed.images[0].instances[0]
    assert inst.bbox_xyxy.tolist() == [10, 20, 50, 70]
    assert inst.dense.part.tolist() == [3, 1]
    np.testing.assert_allclose(inst.dense.u, [0.25, 0.75])
    labels = inst.dense.coarse_label_map()
    # Part 3 (top rows) is drawn after part 1 (left half) and wins where they overlap.
    assert labels[10, 10] == 3 and labels[100, 10] == 1 and labels[100, 200] == 0
    assert labels[10, 200] == 3
    assert parsed.num_dense_instances == 1


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("annotations"), "missing field 'annotations'"),
    (lambda d: d["annotations"][0].pop("bbox"), "missing field 'bbox'"),
    (lambda d: d["annotations"][0].pop("dp_U"), "missing \\['dp_U'\\]"),
    (lambda d: d["annotations"][0]["dp_V"].append(0.5), "differ in length"),
    (lambda d: d["annotations"][0].__setitem__("dp_I", [0, 25]), "dp_I must be in 1..24"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 9), "image_id 9 is not in"),
    (lambda d: d["images"][0].update(ignore_regions_x=[[1, 2, 3]], ignore_regions_y=[[1, 2]]),
     "ignore_regions_x and ignore_regions_y differ"),
])
def test_malformed_files_are_reported(tmp_path, mutate, message):
    data = coco_file([(1, 100, 100)], [person_annotation(1, 1, [0, 0, 10, 10], POINTS)])
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=message):
        load_densepose_coco(path)


def test_missing_and_non_json_files(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        load_densepose_coco(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        load_densepose_coco(tmp_path / "x.json")


def test_dataset_loads_images_and_targets(tmp_path):
    path, image_dir = _write_dataset(tmp_path, [
        person_annotation(1, 1, [10, 20, 40, 30], POINTS),
        person_annotation(2, 1, [50, 5, 20, 20], None)])
    dataset = DensePoseCocoDataset(DatasetSpec(path, image_dir), train=False,
                                   augmentation=AugmentationConfig(test_min_size=120))
    assert len(dataset) == 1
    raw = dataset.load(0)
    assert raw.image.shape == (60, 80, 3) and tuple(raw.image[5, 7]) == (10, 200, 90)
    assert raw.instances[0].dense.segm.all()  # the fixture's torso mask covers the box
    assert raw.instances[1].dense is None
    resized = dataset[0]  # shortest edge 60 -> 120: everything in pixels doubles
    assert resized.image.shape == (120, 160, 3)
    np.testing.assert_allclose(resized.instances[0].box, [20, 40, 100, 100])
    # Points and masks are box-relative: unchanged by the resize.
    np.testing.assert_allclose(resized.instances[0].dense.x, raw.instances[0].dense.x)


def test_missing_image_is_named(tmp_path):
    path, image_dir = _write_dataset(tmp_path, [person_annotation(1, 1, [0, 0, 9, 9], POINTS)])
    (image_dir / "000001.png").unlink()
    dataset = DensePoseCocoDataset(DatasetSpec(path, image_dir), train=False)
    with pytest.raises(FileNotFoundError, match="000001.png"):
        dataset.load(0)


def test_mixed_dataset_numbers_its_sources_one_after_another():
    first, second = list(range(10)), list(range(100, 105))
    mixed = MixedDataset([first, second], [3.0, 1.0])
    assert len(mixed) == 15 and mixed.sizes == [10, 5]
    assert [mixed[k] for k in range(15)] == first + second
    assert mixed.source_of(12) == (1, 2)
    np.testing.assert_allclose(mixed.probabilities, [0.75, 0.25])
    with pytest.raises(IndexError):
        mixed.source_of(15)
    with pytest.raises(ValueError, match="one ratio per dataset"):
        MixedDataset([first], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        MixedDataset([first, []], [1.0, 1.0])


def test_the_sampler_visits_every_item_of_each_source_in_proportion():
    from densepose_ros.data.sampling import TrainingSampler

    sizes, shares = [10, 5], [3.0, 1.0]
    sampler = TrainingSampler(sizes, shares, seed=4)
    draws = list(itertools.islice(iter(sampler), 4000))
    from_first = [d for d in draws if d < 10]
    from_second = [d - 10 for d in draws if d >= 10]
    assert len(from_first) / len(draws) == pytest.approx(0.75, abs=0.03)
    # each source goes through all of its items once per pass, reshuffled every pass
    for items, size in ((from_first, 10), (from_second, 5)):
        passes = [items[k:k + size] for k in range(0, len(items) - size + 1, size)]
        assert all(sorted(p) == list(range(size)) for p in passes)
        assert len({tuple(p) for p in passes}) > 1
    assert list(itertools.islice(iter(sampler), 50)) == draws[:50]  # seeded
    # Two processes take every other draw of the same global sequence: between them, the
    # same images in the same steps as one process.
    ranks = [list(itertools.islice(iter(TrainingSampler(sizes, shares, seed=4, rank=r,
                                                       world_size=2)), 2000))
             for r in (0, 1)]
    assert [d for pair in zip(*ranks, strict=True) for d in pair] == draws
    with pytest.raises(ValueError, match="rank"):
        TrainingSampler(sizes, shares, rank=2, world_size=2)


def test_collate_pads_normalises_and_packs_points(tmp_path):
    path, image_dir = _write_dataset(
        tmp_path,
        [person_annotation(1, 1, [10, 20, 40, 30], POINTS),
         person_annotation(2, 2, [5, 5, 20, 20], POINTS[:1]),
         person_annotation(3, 2, [30, 5, 20, 20], POINTS)],
        images=((1, 60, 80), (2, 50, 70)))
    dataset = DensePoseCocoDataset(DatasetSpec(path, image_dir), train=False,
                                   augmentation=AugmentationConfig(test_min_size=60))
    cfg = InputConfig()
    batch = collate_samples([dataset[0], dataset[1]], cfg)
    assert batch.images.shape == (2, 3, 64, 96)  # padded to multiples of 32
    assert batch.image_sizes == [(60, 80), (60, 84)]
    # A pixel of value (10, 200, 90) BGR minus the BGR mean; padding is 0.
    expected = (torch.tensor([10.0, 200.0, 90.0]) - torch.tensor(cfg.pixel_mean))
    torch.testing.assert_close(batch.images[0, :, 5, 7], expected)
    assert batch.images[0, :, 62, 90].abs().sum() == 0
    second = batch.targets[1]
    assert second.point_instance.tolist() == [0, 1, 1]
    assert second.point_part.tolist() == [3, 3, 1]
    assert second.has_dense.tolist() == [True, True] and second.has_segm.all()
    assert second.segm.shape == (2, 256, 256)
    assert batch.image_ids == [1, 2]


def test_images_default_to_the_synth_layout(tmp_path):
    # densepose synth writes DIR/annotations.json with file names relative to DIR/images.
    path, image_dir = _write_dataset(tmp_path, [person_annotation(1, 1, [0, 0, 9, 9], POINTS)])
    assert image_dir == tmp_path / "images"
    dataset = DensePoseCocoDataset(DatasetSpec(path), train=False)
    assert dataset.images_dir == image_dir
    assert dataset.load(0).image.shape == (60, 80, 3)


def test_two_sources_through_a_dataloader(tmp_path):
    from torch.utils.data import DataLoader

    from densepose_ros.data.dataset import build_training_dataset
    from densepose_ros.data.sampling import TrainingSampler

    first = tmp_path / "a"
    second = tmp_path / "b"
    first.mkdir()
    second.mkdir()
    path_a, dir_a = _write_dataset(first, [person_annotation(1, 1, [10, 20, 40, 30], POINTS)])
    path_b, dir_b = _write_dataset(second, [person_annotation(1, 1, [5, 5, 20, 20], POINTS)])
    augmentation = AugmentationConfig(min_sizes=(64,), max_size=200)
    dataset = build_training_dataset(
        [DatasetSpec(path_a, dir_a, ratio=1.0, name="a"),
         DatasetSpec(path_b, dir_b, ratio=1.0, name="b")], augmentation)
    sampler = TrainingSampler(dataset.sizes, dataset.probabilities, seed=3)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=collate_samples)
    batches = list(itertools.islice(loader, 2))
    assert len(batches) == 2
    sources = [s for batch in batches for s in batch.sources]
    assert set(sources) == {"a", "b"}
    for batch in batches:
        assert batch.images.shape[0] == 4 and batch.images.shape[2] % 32 == 0
        assert all(min(size) == 64 for size in batch.image_sizes)
        assert all(t.point_part.shape[0] == len(POINTS) for t in batch.targets)
