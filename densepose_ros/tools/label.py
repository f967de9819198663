"""``densepose label``: a teacher model's predictions on a robot's own recordings, as
DensePose-COCO training data with the teacher's dense charts. ROS-free (bags are read with
``rosbags``).

Output layout (``label_sources``)::

    DIR/images/000000.jpg ...   the sampled frames
    DIR/annotations.json        DensePose-COCO: box, mask, dp_masks, sampled dp points per
                                person the teacher found (category person = 1; the
                                person's ``map_instance`` value in the maps), plus
                                ``images[i].source`` / ``.frame`` (where each came from)
    DIR/maps/000000.npz         the teacher's dense charts (like ``synth --save-maps``):
                                part (H, W) uint8 0 background, 1..24 charts, 255 unsure
                                (below --min-confidence); u, v (H, W) float32; instance
                                (H, W) uint8 person 1..P (confident pixels); confidence
                                (H, W) float16 teacher probability of the pixel's part;
                                with --keep-probs also probs (P, 25, M, M) float16, each
                                person's fine-part probabilities on the teacher's grid over
                                boxes (P, 4) float32 xyxy (soft targets for distillation)

Frames are sampled per source (every N-th, near-duplicates of the last kept frame
skipped) up to a total. Output depends only on the sources, the teacher and the options.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from densepose_ros.data.symmetry import CHART_MIRROR, COARSE_MIRROR, ChartSymmetry
from densepose_ros.inference.postprocess import detectron2_box, person_iuv_charts
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult
from densepose_ros.io import bag_io, image_codec
from densepose_ros.io.media import IMAGE_MSG_TYPES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from densepose_ros.synth.writer import PERSON_CATEGORY, WriterConfig, person_annotation

UNSURE = 255  # part value of pixels whose teacher probability is below min_confidence


class LabelError(ValueError):
    """A source or option that cannot be used, with a message that says what to do."""


@dataclass(frozen=True)
class LabelConfig:
    """What ``label_sources`` keeps; each default lives here once.

    every: keep every N-th frame of a video or bag (1: all).
    max_frames: most frames kept in all (0: no limit).
    dedup: a frame whose 32x24 grey thumbnail differs from the last kept frame of its
        source by less than this mean absolute grey level is skipped (0: keep all).
    min_score: least teacher detection score of a kept person.
    min_confidence: least teacher probability of a pixel's part for it to be a label
        (others are marked unsure: no loss there).
    flip: test-time augmentation: the teacher also runs on the mirrored image, its charts
        mapped back with the chart symmetry and averaged.
    keep_probs: store each person's fine-part probabilities (soft targets).
    seed: seed of the dp point sampling.
    """

    every: int = 1
    max_frames: int = 0
    dedup: float = 1.5
    min_score: float = 0.8
    min_confidence: float = 0.5
    flip: bool = False
    keep_probs: bool = False
    seed: int = 0
    points_per_person: int = 100
    jpeg_quality: int = 95


@dataclass
class SourceFrame:
    """One frame of a source: where it came from and its BGR pixels (H, W, 3) uint8."""

    source: str
    index: int
    image: np.ndarray


# --- sources -------------------------------------------------------------------------------
def iter_frames(path: Path, topic: str | None = None) -> Iterator[SourceFrame]:
    """Frames of a rosbag2 folder, a video, a folder of images or one image, in order."""
    path = Path(path)
    if path.is_dir() and ((path / "metadata.yaml").is_file() or bag_io.storage_files(path)):
        yield from _bag_frames(path, topic)
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for index, file in enumerate(files):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise LabelError(f"cannot read image {file}")
            yield SourceFrame(str(file), index, image)
    elif not path.exists():
        raise LabelError(f"no such file or folder: {path}")
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise LabelError(f"cannot open video {path}")
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            yield SourceFrame(str(path), index, image)
            index += 1
        capture.release()
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise LabelError(f"cannot read image {path}")
        yield SourceFrame(str(path), 0, image)
    else:
        raise LabelError(f"{path}: not a bag folder, video, image or folder of images")


def _bag_frames(bag: Path, topic: str | None) -> Iterator[SourceFrame]:
    try:
        topics = bag_io.bag_topics(bag)
    except Exception:  # no or broken index: what the storage files hold
        topics, _ = bag_io.salvage_topics(bag)
    images = sorted(t for t, (kind, _) in topics.items() if kind in IMAGE_MSG_TYPES)
    if topic is None:
        if len(images) != 1:
            raise LabelError(f"{bag} has {len(images)} image topics"
                             + (f" ({', '.join(images)}): pick one with --topic" if images
                                else ""))
        topic = images[0]
    elif topic not in images:
        raise LabelError(f"{bag} has no image topic {topic} (image topics: "
                         f"{', '.join(images) or 'none'})")
    store = bag_io.typestore()
    try:
        messages = bag_io.read_bag(bag, [topic])
        for index, message in enumerate(messages):
            msg = store.deserialize_cdr(message.data, message.msgtype)
            try:
                if message.msgtype.endswith("CompressedImage"):
                    image = image_codec.decode_compressed(msg.format, msg.data)
                else:
                    image = image_codec.decode_image(msg.encoding, msg.height, msg.width,
                                                     msg.step, bool(msg.is_bigendian), msg.data)
            except image_codec.ImageDecodeError:
                continue  # an undecodable frame is no training data
            yield SourceFrame(f"{bag}:{topic}", index, image)
    except LabelError:
        raise
    except Exception as error:
        raise LabelError(f"cannot read bag {bag}: {type(error).__name__}: {error}") from None


def sample_frames(frames: Iterator[SourceFrame], config: LabelConfig) -> Iterator[SourceFrame]:
    """Every ``config.every``-th frame, near-duplicates of the last kept one skipped."""
    last = None
    for frame in frames:
        if frame.index % config.every:
            continue
        thumb = cv2.resize(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY), (32, 24),
                           interpolation=cv2.INTER_AREA).astype(np.float32)
        if last is not None and config.dedup > 0 and np.abs(thumb - last).mean() < config.dedup:
            continue
        last = thumb
        yield frame


# --- the teacher ---------------------------------------------------------------------------
def flip_averaged(predictor, image: np.ndarray, result: DensePoseResult,
                  symmetry: ChartSymmetry) -> DensePoseResult:
    """``result`` with charts averaged with those of the mirrored image on the mirrored
    boxes, mapped back: the grid flipped, chart channels swapped left/right, each chart's
    U/V moved through the chart symmetry. Part probabilities and U/V are averaged; the
    returned fine/coarse "logits" are log-probabilities."""
    if len(result) == 0:
        return result
    result = result.torch()  # the teacher works in torch, whichever backend detected
    width = image.shape[1]
    boxes = result.boxes.numpy().copy()
    boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    mirrored = predictor.predict_on_boxes(np.ascontiguousarray(image[:, ::-1]), boxes).charts
    charts = result.charts
    fine = torch.softmax(mirrored.fine_segm.float(), 1).flip(-1)[:, torch.from_numpy(CHART_MIRROR)]
    coarse = torch.softmax(mirrored.coarse_segm.float(), 1).flip(-1)
    if coarse.shape[1] == len(COARSE_MIRROR):
        coarse = coarse[:, torch.from_numpy(COARSE_MIRROR)]
    u_back, v_back = charts.u.clone().float(), charts.v.clone().float()
    u_flip, v_flip = mirrored.u.float().flip(-1).numpy(), mirrored.v.float().flip(-1).numpy()
    for chart in range(1, fine.shape[1]):
        part = np.full(u_flip[:, chart].shape, chart)
        target, u, v = symmetry.mirror(part, u_flip[:, chart], v_flip[:, chart])
        u_back[:, int(target.flat[0])] = torch.from_numpy(u)
        v_back[:, int(target.flat[0])] = torch.from_numpy(v)
    average = lambda a, b: torch.log((a + b) / 2 + 1e-8)  # noqa: E731
    averaged = DensePoseChartOutput(
        coarse_segm=average(torch.softmax(charts.coarse_segm.float(), 1), coarse),
        fine_segm=average(torch.softmax(charts.fine_segm.float(), 1), fine),
        u=(charts.u.float() + u_back) / 2, v=(charts.v.float() + v_back) / 2,
        sigma_2=charts.sigma_2)
    return DensePoseResult(result.boxes, result.scores, averaged, result.image_size,
                           result.timings, result.keypoints)


def part_probability(result: DensePoseResult, index: int) -> np.ndarray:
    """(h, w) the teacher's probability of each pixel's decided part over person ``index``'s
    integer box (as the exact charts decide it): the fine probability of the chart on the
    foreground, the coarse background probability elsewhere."""
    x0, y0, x1, y1 = detectron2_box(result.boxes[index].float())
    charts = result.charts
    segm = torch.cat([charts.coarse_segm[index:index + 1], charts.fine_segm[index:index + 1]],
                     dim=1).float()
    segm = F.interpolate(segm, (y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
    coarse_channels = charts.coarse_segm.shape[1]
    coarse = torch.softmax(segm[:coarse_channels], 0)
    fine = torch.softmax(segm[coarse_channels:], 0)
    foreground = segm[1:coarse_channels].amax(0) > segm[0]
    return torch.where(foreground, fine.amax(0), coarse[0]).numpy()


@dataclass
class TeacherMaps:
    """A frame's dense teacher labels in a ``RenderedScene``'s shape, for the annotation
    writer shared with ``densepose synth`` (fields as documented in the module docstring)."""

    part: np.ndarray
    u: np.ndarray
    v: np.ndarray
    instance: np.ndarray
    confidence: np.ndarray
    keypoints: np.ndarray
    # every foreground pixel, sure or not: the chart decided there and the person 1..P
    # (the person's mask, box and part masks come from these; its points only from sure
    # pixels)
    chart: np.ndarray | None = None
    body: np.ndarray | None = None

    @property
    def num_persons(self) -> int:
        return len(self.keypoints)


def teacher_maps(result: DensePoseResult, height: int, width: int,
                 min_confidence: float) -> TeacherMaps:
    """Full-frame maps of the teacher's persons; where persons overlap, the better-scoring
    one is on top (it is painted last)."""
    part = np.zeros((height, width), np.uint8)
    u = np.zeros((height, width), np.float32)
    v = np.zeros((height, width), np.float32)
    instance = np.zeros((height, width), np.uint8)
    confidence = np.zeros((height, width), np.float16)
    chart = np.zeros((height, width), np.uint8)
    body_map = np.zeros((height, width), np.uint8)
    persons = person_iuv_charts(result, "exact")
    for k in reversed(range(len(persons))):
        person = persons[k]
        x0, y0, x1, y1 = person.box
        probability = part_probability(result, k)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        inside = np.s_[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        frame = np.s_[cy0:cy1, cx0:cx1]
        labels, sure = person.labels[inside], probability[inside] >= min_confidence
        body = labels > 0
        part[frame][body] = np.where(sure, labels, UNSURE)[body]
        u[frame][body], v[frame][body] = person.u[inside][body], person.v[inside][body]
        confidence[frame][body] = probability[inside][body]
        instance[frame][body] = 0
        instance[frame][body & sure] = k + 1
        chart[frame][body], body_map[frame][body] = labels[body], k + 1
    keypoints = np.zeros((len(persons), 17, 3), np.float32)
    if result.keypoints is not None:
        keypoints = result.keypoints.float().numpy().copy()
        keypoints[..., 2] = np.where(keypoints[..., 2] > 0.05, 2, 0)  # COCO visibility
    return TeacherMaps(part, u, v, instance, confidence, keypoints, chart, body_map)


# --- the writer ----------------------------------------------------------------------------
def label_sources(sources: list[Path], out_dir: Path, backend, config: LabelConfig, *,
                  symmetry: ChartSymmetry | None = None, topic: str | None = None,
                  teacher_name: str = "", progress: bool = True) -> dict:
    """Label the sampled frames of ``sources`` with ``backend`` (the teacher); write the
    layout of the module docstring and return the COCO dictionary."""
    from tqdm import tqdm

    if config.flip and (symmetry is None or not hasattr(backend, "predictor")):
        raise LabelError("--flip needs the torch backend and a chart symmetry (--symmetry)")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "maps").mkdir(parents=True, exist_ok=True)
    writer_config = WriterConfig(points_per_person=config.points_per_person)
    images, annotations = [], []
    bar = tqdm(total=config.max_frames or None, desc="label", unit="frame",
               disable=not progress)
    for source in sources:
        for frame in sample_frames(iter_frames(source, topic), config):
            if config.max_frames and len(images) >= config.max_frames:
                break
            record, anns = _label_frame(frame, len(images), out_dir, backend, config,
                                        symmetry, writer_config)
            images.append(record)
            for ann in anns:
                annotations.append({"id": len(annotations) + 1, "image_id": record["id"], **ann})
            bar.update()
            bar.set_postfix(persons=len(annotations))
    bar.close()
    coco = {
        "info": {"description": "densepose label: teacher pseudo-labels",
                 "teacher": teacher_name, "options": asdict(config),
                 "sources": [str(s) for s in sources]},
        "images": images, "annotations": annotations, "categories": [PERSON_CATEGORY],
    }
    (out_dir / "annotations.json").write_text(json.dumps(coco))
    return coco


def _sure_points_only(ann: dict, part: np.ndarray) -> dict:
    """The annotation without the dp points that fall on unsure pixels."""
    x, y, w, h = ann["bbox"]
    cols = np.floor(x + np.asarray(ann["dp_x"]) / 256 * w).astype(np.int64)
    rows = np.floor(y + np.asarray(ann["dp_y"]) / 256 * h).astype(np.int64)
    keep = part[np.clip(rows, 0, part.shape[0] - 1), np.clip(cols, 0, part.shape[1] - 1)] \
        != UNSURE
    return {**ann, **{key: [value for value, kept in zip(ann[key], keep, strict=True) if kept]
                      for key in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")}}


def _label_frame(frame: SourceFrame, number: int, out_dir: Path, backend,
                 config: LabelConfig, symmetry, writer_config) -> tuple[dict, list[dict]]:
    image = frame.image
    height, width = image.shape[:2]
    result = backend.infer(image).torch()  # the teacher's maps are computed in torch
    result = result.select(result.scores >= config.min_score)
    if config.flip:
        result = flip_averaged(backend.predictor, image, result, symmetry)
    maps = teacher_maps(result, height, width, config.min_confidence)
    stem = f"{number:06d}"
    cv2.imwrite(str(out_dir / "images" / f"{stem}.jpg"), image,
                [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
    arrays = {"part": maps.part, "u": maps.u, "v": maps.v, "instance": maps.instance,
              "confidence": maps.confidence}
    if config.keep_probs:
        arrays["probs"] = torch.softmax(result.charts.fine_segm.float(), 1).numpy().astype(
            np.float16)
        arrays["boxes"] = result.boxes.float().numpy()
    np.savez_compressed(out_dir / "maps" / f"{stem}.npz", **arrays)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, number]))
    # box, mask and part masks from all of the person's pixels (a box of the sure pixels
    # alone loses hands and feet, and the student learns too small boxes); points only
    # where the teacher is sure
    whole = dataclasses.replace(maps, part=maps.chart, instance=maps.body)
    anns = []
    for k in range(maps.num_persons):
        ann = person_annotation(whole, k, writer_config, rng)
        if ann is not None and "dp_x" in ann:
            ann = _sure_points_only(ann, maps.part)
        if ann is not None:
            # map_instance: the person's value in the maps' instance image
            anns.append({**ann, "score": round(float(result.scores[k]), 4),
                         "map_instance": k + 1})
    record = {"id": number + 1, "file_name": f"{stem}.jpg", "width": width, "height": height,
              "source": frame.source, "frame": frame.index}
    return record, anns
