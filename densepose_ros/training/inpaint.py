"""The DensePose paper's teacher for sparse annotations: a small fully convolutional network
that sees a person's box crop and part masks and predicts dense I, U, V inside the mask,
trained on the sparse annotated points plus the masks. Its predictions "inpaint" the
supervision between the ~100 annotated points (``densepose label --inpaint``).

Input (per person): the box crop resized to ``CROP`` x ``CROP`` (BGR, the detector's pixel
normalisation), the person's foreground mask from its ``dp_masks`` and the x, y position
across the box: 6 channels.
Output: 25 fine-part logits and 24 U and 24 V maps on the same grid.
Loss: cross-entropy of the part at the annotated points, background cross-entropy on the
cells outside the mask, smooth-L1 of U and V of the annotated chart at the points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.data.coco import DP_FRAME_SIZE, NUM_CHARTS, load_densepose_coco
from densepose_ros.data.dataset import default_images_dir, read_image
from densepose_ros.modeling.config import InputConfig

CROP = 32  # the teacher's grid: DensePose's 256 box frame / 8 (cheap enough for a CPU)
# BGR crop, foreground mask, and the x and y position across the box (charts and U/V
# depend on where in the body a pixel is; a convolution alone does not know it)
INPUT_CHANNELS = 6


class InpaintingTeacher(nn.Module):
    """A U-Net-like FCN: [B, 6, CROP, CROP] -> fine [B, 25, ...], u, v [B, 24, ...]."""

    def __init__(self, width: int = 24):
        super().__init__()

        def block(cin, cout, stride=1):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.enc1 = nn.Sequential(block(INPUT_CHANNELS, width), block(width, width))
        self.enc2 = nn.Sequential(block(width, 2 * width, 2), block(2 * width, 2 * width))
        self.enc3 = nn.Sequential(block(2 * width, 4 * width, 2), block(4 * width, 4 * width),
                                  block(4 * width, 4 * width))
        self.dec2 = block(6 * width, 2 * width)
        self.dec1 = block(3 * width, width)
        self.head = nn.Conv2d(width, NUM_CHARTS + 1 + 2 * NUM_CHARTS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        out = self.head(d1)
        fine = out[:, :NUM_CHARTS + 1]
        u = torch.sigmoid(out[:, NUM_CHARTS + 1:2 * NUM_CHARTS + 1])
        v = torch.sigmoid(out[:, 2 * NUM_CHARTS + 1:])
        return fine, u, v


@dataclass
class PersonCrop:
    """One annotated person: network input and sparse targets.

    inputs: [6, CROP, CROP] float32; mask: [CROP, CROP] bool foreground;
    cells: [P, 2] int64 (row, col) of the points on the grid; part [P] int64 1..24;
    uv [P, 2] float32.
    """

    inputs: np.ndarray
    mask: np.ndarray
    cells: np.ndarray
    part: np.ndarray
    uv: np.ndarray


def person_inputs(image: np.ndarray, box_xyxy, mask256: np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """([6, CROP, CROP] network input, [CROP, CROP] bool mask) of a person: the box crop
    (normalised as the detector's input), its 256 x 256 foreground mask, x and y."""
    x0, y0, x1, y1 = (float(c) for c in box_xyxy)
    # an affine map of the box onto the grid (sub-pixel boxes, parts outside the image: 0)
    scale_x, scale_y = CROP / max(x1 - x0, 1e-3), CROP / max(y1 - y0, 1e-3)
    affine = np.array([[scale_x, 0, -x0 * scale_x], [0, scale_y, -y0 * scale_y]], np.float32)
    crop = cv2.warpAffine(image, affine, (CROP, CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT).astype(np.float32)
    cfg = InputConfig()
    crop = (crop - np.asarray(cfg.pixel_mean, np.float32)) / np.asarray(cfg.pixel_std,
                                                                        np.float32)
    mask = cv2.resize(mask256.astype(np.uint8), (CROP, CROP),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    position = (np.arange(CROP, dtype=np.float32) + 0.5) / CROP - 0.5
    xs = np.broadcast_to(position[None, :], (CROP, CROP))
    ys = np.broadcast_to(position[:, None], (CROP, CROP))
    return np.concatenate([crop.transpose(2, 0, 1), mask[None].astype(np.float32), xs[None],
                           ys[None]]), mask


def load_person_crops(annotations: Path, images_dir: Path | None = None) -> list[PersonCrop]:
    """Every person with DensePose points and part masks of a DensePose-COCO file."""
    coco = load_densepose_coco(annotations)
    images_dir = Path(images_dir) if images_dir else default_images_dir(annotations)
    crops = []
    for record in coco.images:
        usable = [i for i in record.instances if i.dense is not None and len(i.dense)
                  and i.dense.masks is not None and not i.is_crowd]
        if not usable:
            continue
        image = read_image(images_dir / record.file_name)
        for inst in usable:
            d = inst.dense
            inputs, mask = person_inputs(image, inst.bbox_xyxy, d.coarse_label_map() > 0)
            cells = np.stack([np.clip((d.y / DP_FRAME_SIZE * CROP).astype(np.int64), 0, CROP - 1),
                              np.clip((d.x / DP_FRAME_SIZE * CROP).astype(np.int64), 0, CROP - 1)],
                             axis=1)
            crops.append(PersonCrop(inputs, mask, cells, d.part.astype(np.int64),
                                    np.stack([d.u, d.v], axis=1).astype(np.float32)))
    return crops


def inpainting_loss(model: InpaintingTeacher, crops: list[PersonCrop]) -> torch.Tensor:
    """Part CE at the points + background CE outside the masks + U/V smooth-L1 at the
    points (of the annotated chart)."""
    inputs = torch.from_numpy(np.stack([c.inputs for c in crops]))
    fine, u, v = model(inputs)
    person = torch.cat([torch.full((len(c.part),), k) for k, c in enumerate(crops)])
    rows = torch.from_numpy(np.concatenate([c.cells[:, 0] for c in crops]))
    cols = torch.from_numpy(np.concatenate([c.cells[:, 1] for c in crops]))
    part = torch.from_numpy(np.concatenate([c.part for c in crops]))
    uv = torch.from_numpy(np.concatenate([c.uv for c in crops]))
    loss_part = F.cross_entropy(fine[person, :, rows, cols], part)
    outside = torch.from_numpy(~np.stack([c.mask for c in crops]))
    background = F.cross_entropy(fine, torch.zeros(fine.shape[0], CROP, CROP, dtype=torch.long),
                                 reduction="none")[outside]
    loss_background = background.mean() if len(background) else fine.sum() * 0
    chart = (part - 1)[:, None]
    u_at = u[person, :, rows, cols].gather(1, chart)[:, 0]
    v_at = v[person, :, rows, cols].gather(1, chart)[:, 0]
    loss_uv = F.smooth_l1_loss(u_at, uv[:, 0], beta=0.1) + F.smooth_l1_loss(v_at, uv[:, 1],
                                                                             beta=0.1)
    return loss_part + loss_background + 10 * loss_uv


def train_inpainter(crops: list[PersonCrop], steps: int, batch: int = 32, lr: float = 2e-3,
                    seed: int = 0, progress: bool = True) -> tuple[InpaintingTeacher, list]:
    """Adam with a cosine schedule; returns the model (eval mode) and the loss per step."""
    from tqdm import tqdm

    if not crops:
        raise ValueError("no person with DensePose points and part masks to train on")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = InpaintingTeacher()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc="inpainting teacher", disable=not progress):
        chosen = rng.choice(len(crops), size=min(batch, len(crops)), replace=False)
        loss = inpainting_loss(model, [crops[k] for k in chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return model.eval(), losses


def save_inpainter(model: InpaintingTeacher, path: Path) -> None:
    torch.save({"kind": "densepose_ros.inpainting_teacher", "crop": CROP,
                "state_dict": model.state_dict()}, path)


def load_inpainter(path: Path) -> InpaintingTeacher:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types for a foreign file
        raise ValueError(f"cannot read the inpainting teacher {path}: "
                         f"{type(error).__name__}") from None
    if not isinstance(saved, dict) or saved.get("kind") != "densepose_ros.inpainting_teacher":
        raise ValueError(f"{path} is not an inpainting teacher (`densepose train-inpainter`)")
    model = InpaintingTeacher()
    model.load_state_dict(saved["state_dict"])
    return model.eval()


@torch.inference_mode()
def inpaint_person(model: InpaintingTeacher, image: np.ndarray, box_xyxy,
                   mask256: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense (part, u, v, probability) on the CROP grid of the box: inside the mask the
    most likely chart (never background), outside 0."""
    inputs, mask = person_inputs(image, box_xyxy, mask256)
    fine, u, v = model(torch.from_numpy(inputs)[None])
    probs = torch.softmax(fine[0], 0)
    best = probs[1:].argmax(0)
    part = (best + 1).numpy().astype(np.uint8) * mask
    u_best = u[0].gather(0, best[None])[0].numpy() * mask
    v_best = v[0].gather(0, best[None])[0].numpy() * mask
    probability = probs[1:].amax(0).numpy() * mask
    return part, u_best.astype(np.float32), v_best.astype(np.float32), probability


def inpaint_annotations(annotations: Path, out_dir: Path, model: InpaintingTeacher,
                        images_dir: Path | None = None, progress: bool = True) -> dict:
    """Densify a DensePose-COCO file: every person with part masks gets the teacher's dense
    charts inside its mask. Writes ``out_dir`` in the layout of ``densepose label`` (the
    annotations as they were plus ``map_instance``; ``maps/*.npz``; ``images`` linked to
    the source images), for a ``type: distill`` training entry. The annotated points stay
    in the annotations; the maps hold the teacher's values everywhere in the masks."""
    import json
    import os
    import shutil

    from tqdm import tqdm

    annotations = Path(annotations)
    images_dir = Path(images_dir) if images_dir else default_images_dir(annotations)
    raw = json.loads(annotations.read_text())
    coco = load_densepose_coco(annotations)
    out_dir = Path(out_dir)
    (out_dir / "maps").mkdir(parents=True, exist_ok=True)
    link = out_dir / "images"
    if not link.exists():
        try:
            os.symlink(images_dir.resolve(), link, target_is_directory=True)
        except OSError:  # no symlinks (some filesystems): copy
            shutil.copytree(images_dir, link)
    map_instance: dict[int, int] = {}
    for record in tqdm(coco.images, desc="inpaint", unit="img", disable=not progress):
        image = read_image(images_dir / record.file_name)
        height, width = image.shape[:2]
        part = np.zeros((height, width), np.uint8)
        u = np.zeros((height, width), np.float32)
        v = np.zeros((height, width), np.float32)
        instance = np.zeros((height, width), np.uint8)
        confidence = np.zeros((height, width), np.float16)
        people = [i for i in record.instances if i.dense is not None
                  and i.dense.masks is not None and not i.is_crowd]
        for number, inst in enumerate(people, start=1):
            grid = inpaint_person(model, image, inst.bbox_xyxy,
                                  inst.dense.coarse_label_map() > 0)
            x0, y0, x1, y1 = inst.bbox_xyxy
            c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
            c1, r1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
            if c1 <= c0 or r1 <= r0:
                continue
            cols = np.clip(((np.arange(c0, c1) + 0.5 - x0) / max(x1 - x0, 1e-3) * CROP)
                           .astype(np.int64), 0, CROP - 1)
            rows = np.clip(((np.arange(r0, r1) + 0.5 - y0) / max(y1 - y0, 1e-3) * CROP)
                           .astype(np.int64), 0, CROP - 1)
            cells = np.ix_(rows, cols)
            body = grid[0][cells] > 0
            region = np.s_[r0:r1, c0:c1]
            for target, values in ((part, grid[0]), (u, grid[1]), (v, grid[2]),
                                   (confidence, grid[3])):
                target[region][body] = values[cells][body]
            if body.any():
                instance[region][body] = number
                map_instance[inst.id] = number
        stem = Path(record.file_name).stem
        np.savez_compressed(out_dir / "maps" / f"{stem}.npz", part=part, u=u, v=v,
                            instance=instance, confidence=confidence)
    for ann in raw["annotations"]:
        if ann["id"] in map_instance:
            ann["map_instance"] = map_instance[ann["id"]]
    raw.setdefault("info", {})["inpainted_by"] = "densepose label --inpaint"
    (out_dir / "annotations.json").write_text(json.dumps(raw))
    return raw
