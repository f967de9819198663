"""The training loop: data, optimiser, schedule, checkpoints, resume, logging and previews.

A run directory (``TrainConfig.output_dir``) holds:

- ``last.pth``: the resumable checkpoint, written atomically every ``checkpoint_period``
  steps and at the end. It is an ordinary weights file (``load_model`` reads it) with the
  optimiser, gradient-scaler and RNG state, the step and the training configuration added
  under ``training_state``;
- ``model_final.pth``: the weights alone, when ``solver.max_iter`` is reached;
- ``metrics.jsonl``: one JSON line per logged step (losses, learning rate, seconds/step);
- ``loss_curve.png``: the total and per-group losses so far (redrawn at each checkpoint);
- ``previews/iter_NNNNNNN.png`` and TensorBoard (``tb/``): scalars and images of the model's
  prediction next to the ground truth.

``--resume`` restarts from ``last.pth``: at most ``checkpoint_period`` steps are lost
(none after SIGINT/SIGTERM, which stop after the current step with a checkpoint). The
configuration given on resume is used (so ``solver.max_iter`` can be raised to train on);
the model must be the same.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from densepose_ros.data.batching import TrainingBatch, collate_samples
from densepose_ros.data.dataset import DatasetSpec, MixedDataset, build_training_dataset
from densepose_ros.data.sampling import TrainingSampler
from densepose_ros.inference.checkpoint import (
    check_state_dict,
    import_detectron2,
    read_weights,
    save_weights,
)
from densepose_ros.inference.device import resolve_device
from densepose_ros.inference.model_zoo import ModelZooError, resolve_weights
from densepose_ros.modeling.config import ModelConfig, get_config
from densepose_ros.modeling.init import initialize_like_detectron2
from densepose_ros.modeling.model import DensePoseRCNN, build_model
from densepose_ros.training import distributed, pretrained
from densepose_ros.training.config import TrainConfig, train_config_from_dict
from densepose_ros.training.detection import TrainingStepOutput, training_step_losses
from densepose_ros.training.distributed import DistributedContext
from densepose_ros.training.plotting import Series, line_chart

LAST_CHECKPOINT = "last.pth"
FINAL_WEIGHTS = "model_final.pth"
METRICS_FILE = "metrics.jsonl"
LOSS_CURVE = "loss_curve.png"


class TrainingError(RuntimeError):
    """A run that cannot start or continue (bad checkpoint, diverged loss, ...)."""


@dataclass
class TrainingResult:
    """Outcome of ``train``.

    Attributes:
        output_dir: the run directory.
        start_iteration: steps already done when this call started (0, or the resumed one).
        iteration: steps done when it returned.
        checkpoint: path of ``last.pth``.
        final_weights: ``model_final.pth`` if ``max_iter`` was reached, else None.
        seconds: wall time of this call.
    """

    output_dir: Path
    start_iteration: int
    iteration: int
    checkpoint: Path
    final_weights: Path | None
    seconds: float


# -- learning rate -----------------------------------------------------------------------------
def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    """Learning rate of step `iteration` (0-based): linear warm-up, then steps or cosine."""
    solver = cfg.solver
    if solver.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(iteration, solver.max_iter)
                                       / solver.max_iter))
    else:
        factor = solver.gamma ** sum(iteration >= step for step in solver.steps)
    if iteration < solver.warmup_iters:
        alpha = iteration / solver.warmup_iters
        factor *= solver.warmup_factor * (1.0 - alpha) + alpha
    return solver.base_lr * factor


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # No weight decay on norms and biases (as detectron2's WEIGHT_DECAY_NORM = 0 default).
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or ".norm." in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.solver.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.solver.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.solver.base_lr)
    return torch.optim.SGD(groups, lr=cfg.solver.base_lr, momentum=cfg.solver.momentum)


# -- data ---------------------------------------------------------------------------------------
def build_loader(cfg: TrainConfig, model_cfg: ModelConfig, seed: int,
                 context: DistributedContext | None = None) -> DataLoader:
    """Endless batches of this process's share of each step's global batch
    (``batch_size / world size`` images; ``data.sampling``)."""
    context = context or DistributedContext()
    specs = [DatasetSpec(e.annotations, images=e.images, symmetry=e.symmetry or None,
                         ratio=e.ratio,
                         kind=e.type, uv_confidence=e.uv_confidence,
                         soft_targets=e.soft_targets, point_stride=e.point_stride,
                         max_points=e.max_points)
             for e in cfg.datasets]
    try:
        dataset = build_training_dataset(specs, cfg.augmentation)
    except (OSError, ValueError) as error:
        raise TrainingError(f"cannot load the training data: {error}") from error
    if len(dataset) == 0:
        raise TrainingError("the training data has no image with a person")
    input_cfg = model_cfg.input

    collate = functools.partial(collate_samples, input_config=input_cfg)  # picklable
    if isinstance(dataset, MixedDataset):
        sizes, shares = dataset.sizes, dataset.probabilities
    else:
        sizes, shares = [len(dataset)], None
    sampler = TrainingSampler(sizes, shares, seed=seed, rank=context.rank,
                              world_size=context.world_size)
    # the generator seeds the workers' augmentation: different in every process
    return DataLoader(dataset, batch_size=cfg.batch_size // context.world_size,
                      sampler=sampler, num_workers=cfg.num_workers, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed + 7919 * context.rank),
                      persistent_workers=cfg.num_workers > 0,
                      multiprocessing_context=_worker_start_method(cfg.num_workers))


def _worker_start_method(num_workers: int) -> str | None:
    """How loader workers start: forked (fast, the default) unless OpenVINO runs in this
    process: a child forked after OpenVINO's thread pools are up brought down the parent
    when the workers ended (seen in the test suite), so they start from a clean server."""
    if num_workers > 0 and "openvino" in sys.modules:
        return "forkserver"
    return None


def batch_to(batch: TrainingBatch, device: torch.device) -> TrainingBatch:
    return TrainingBatch(images=batch.images.to(device, non_blocking=True),
                         image_sizes=batch.image_sizes,
                         targets=[t.to(device) for t in batch.targets],
                         image_ids=batch.image_ids, sources=batch.sources)


# -- model and checkpoints ---------------------------------------------------------------------
def initial_model(cfg: TrainConfig) -> tuple[DensePoseRCNN, ModelConfig]:
    """The model to train: from scratch (seeded) or from `init_weights`."""
    try:
        model_cfg = get_config(cfg.model)
    except ValueError as error:
        raise TrainingError(str(error)) from error
    torch.manual_seed(cfg.seed)
    if cfg.init_weights == pretrained.IMAGENET or pretrained.is_backbone_pickle(
            cfg.init_weights):
        return _pretrained_backbone_model(cfg, model_cfg)
    model = _fresh_model(model_cfg)
    if cfg.init_weights:
        try:  # a file, or a model-zoo name (downloaded and imported once)
            path = resolve_weights(cfg.init_weights)
        except (FileNotFoundError, ModelZooError) as error:
            raise TrainingError(f"init_weights: {error}") from error
        try:
            if path.suffix == ".pkl":
                state = import_detectron2(path, model_cfg.name)
            else:
                try:
                    file_cfg, state, _ = read_weights(path)
                    if file_cfg.name != model_cfg.name:
                        if _extends(model_cfg, file_cfg):
                            state = extended_state(model.state_dict(), state)
                            print(f"init_weights: {file_cfg.name} -> {model_cfg.name}: the "
                                  "keypoint head starts fresh (seeded), cross-talk inputs at 0",
                                  file=sys.stderr)
                        elif _extends(file_cfg, model_cfg) and not file_cfg.keypoints.cross_talk:
                            # The single-task model inside a multi-task file (the default
                            # model has a keypoint head): the same weights less that head.
                            kept = model.state_dict().keys()
                            state = {k: v for k, v in state.items() if k in kept}
                            print(f"init_weights: {file_cfg.name} -> {model_cfg.name}: the "
                                  "keypoint head is left out", file=sys.stderr)
                        else:
                            raise TrainingError(f"{path} holds model {file_cfg.name}, the "
                                                f"config trains {model_cfg.name}")
                except ValueError as error:
                    if "detectron2" not in str(error):
                        raise
                    state = import_detectron2(path, model_cfg.name)
            check_state_dict(model.state_dict(), state, str(path))
        except (OSError, ValueError) as error:
            raise TrainingError(f"cannot start from {path}: {error}") from error
        model.load_state_dict(state, strict=True)
    return model, model_cfg


def _fresh_model(model_cfg: ModelConfig) -> DensePoseRCNN:
    """The model with detectron2's initial weights (seeded by the caller)."""
    model = build_model(model_cfg)
    initialize_like_detectron2(model)
    return model


def _pretrained_backbone_model(cfg: TrainConfig, model_cfg: ModelConfig
                               ) -> tuple[DensePoseRCNN, ModelConfig]:
    """A fresh model (detectron2 initialisation) whose ResNet comes from ImageNet
    (``training.pretrained``)."""
    model_cfg = pretrained.model_config_for(model_cfg, cfg.init_weights)
    model = _fresh_model(model_cfg)
    try:
        state = pretrained.backbone_state(model_cfg, cfg.init_weights)
        loaded = pretrained.load_backbone(model, state, cfg.init_weights)
    except pretrained.PretrainedError as error:
        raise TrainingError(f"init_weights: {error}") from error
    print(f"init_weights: {loaded} ImageNet backbone tensors from {cfg.init_weights}; FPN "
          "and heads start fresh (seeded)", file=sys.stderr)
    return model, model_cfg


def _extends(model_cfg: ModelConfig, file_cfg: ModelConfig) -> bool:
    """Whether `model_cfg` is `file_cfg`'s model with a keypoint head added (the multi-task
    variants fine-tune from their single-task model)."""
    return (not file_cfg.keypoints.enabled and model_cfg.keypoints.enabled
            and dataclasses.replace(model_cfg, name=file_cfg.name,
                                    keypoints=file_cfg.keypoints) == file_cfg)


def extended_state(fresh: dict[str, torch.Tensor], given: dict[str, torch.Tensor]
                   ) -> dict[str, torch.Tensor]:
    """`given` (a single-task model's weights) completed for its multi-task extension:
    the new keypoint head keeps its fresh values, and a layer whose input grew (cross-talk
    channels appended to the DensePose head's input) keeps the given weights for the old
    channels and 0 for the new ones, so the extended model starts computing exactly what
    the given one did."""
    state = {}
    for key, value in fresh.items():
        old = given.get(key)
        if old is None:
            state[key] = value
        elif old.shape == value.shape:
            state[key] = old
        elif (old.dim() == value.dim() >= 2 and old.shape[0] == value.shape[0]
              and old.shape[2:] == value.shape[2:] and old.shape[1] < value.shape[1]):
            grown = torch.zeros_like(value)
            grown[:, :old.shape[1]] = old
            state[key] = grown
        else:
            raise ValueError(f"{key}: cannot extend {tuple(old.shape)} to {tuple(value.shape)}")
    return state


def read_training_checkpoint(path: Path) -> tuple[ModelConfig, dict, dict[str, Any]]:
    """Model config, state dict and training state of a resumable checkpoint."""
    try:
        model_cfg, state, _ = read_weights(path)
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise TrainingError(f"cannot resume from {path}: {error}") from error
    training_state = payload.get("training_state")
    required = ("iteration", "optimizer", "rng")
    if not isinstance(training_state, dict) or any(k not in training_state for k in required):
        raise TrainingError(f"cannot resume from {path}: it has no training state (a weights "
                            "file, not a training checkpoint); start with init_weights= instead")
    return model_cfg, state, training_state


# -- logging ------------------------------------------------------------------------------------
LOSS_GROUPS = {
    "rpn": ("loss_rpn_cls", "loss_rpn_loc"),
    "box": ("loss_cls", "loss_box_reg"),
    "keypoint": ("loss_keypoint",),  # models with a keypoint head
    "densepose": ("loss_densepose_U", "loss_densepose_V", "loss_densepose_I",
                  "loss_densepose_S"),
}
CURVE_COLORS = {"total": (40, 40, 40), "rpn": (200, 120, 0), "box": (0, 150, 0),
                "keypoint": (160, 0, 160), "densepose": (0, 0, 220)}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    return rows


def draw_loss_curve(rows: list[dict[str, Any]], path: Path) -> None:
    """PNG of the logged total and per-group losses against the step (log scale)."""
    series = [Series("total", CURVE_COLORS["total"],
                     [(r["iteration"], r["loss"]) for r in rows])]
    for group, names in LOSS_GROUPS.items():
        if not any(n in r for r in rows for n in names):
            continue  # e.g. no keypoint loss without a keypoint head
        series.append(Series(group, CURVE_COLORS[group],
                             [(r["iteration"], sum(r.get(n, 0.0) for n in names))
                              for r in rows]))
    line_chart(series, path, "training loss (log scale) vs step", log_y=True)


def preview_image(model: DensePoseRCNN, model_cfg: ModelConfig, batch: TrainingBatch
                  ) -> np.ndarray:
    """BGR image: the model's prediction (left) next to the ground truth (right) of the
    batch's first image; ground truth drawn as boxes and annotated points coloured by chart."""
    from densepose_ros.inference.postprocess import PART_COLORS_BGR, draw_overlay
    from densepose_ros.inference.predictor import DensePosePredictor

    h, w = batch.image_sizes[0]
    mean = torch.tensor(model_cfg.input.pixel_mean).view(3, 1, 1)
    std = torch.tensor(model_cfg.input.pixel_std).view(3, 1, 1)
    pixels = (batch.images[0, :, :h, :w].cpu() * std + mean).clamp(0, 255).byte()
    image = np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())
    if model_cfg.input.color_order == "RGB":
        image = np.ascontiguousarray(image[:, :, ::-1])
    # A copy: the predictor folds norms and changes the memory layout in place.
    snapshot = copy.deepcopy(model).cpu().eval()
    predictor = DensePosePredictor(snapshot, model_cfg, device="cpu", resize=False)
    predicted = draw_overlay(image, predictor(image))
    truth = image.copy()
    targets = batch.targets[0].to("cpu")
    for k, box in enumerate(targets.boxes.tolist()):
        x1, y1, x2, y2 = (int(round(c)) for c in box)
        cv2.rectangle(truth, (x1, y1), (x2, y2), (255, 255, 255), 1)
        of_person = targets.point_instance == k
        for (px, py), part in zip(targets.point_xy[of_person].tolist(),
                                  targets.point_part[of_person].tolist(), strict=True):
            cx = int(x1 + px / 256.0 * (x2 - x1))
            cy = int(y1 + py / 256.0 * (y2 - y1))
            cv2.circle(truth, (cx, cy), 2, tuple(int(c) for c in PART_COLORS_BGR[part]), -1)
    for canvas, label in ((predicted, "prediction"), (truth, "ground truth")):
        cv2.putText(canvas, label, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([predicted, truth], axis=1)


# -- the loop -----------------------------------------------------------------------------------
def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "sampling": generator.get_state()}


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampling"])


class _StopRequest:
    """SIGINT/SIGTERM during training: finish the current step, checkpoint, stop (a signal
    landing inside an optimiser step would otherwise leave half-updated weights)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        self.requested = True
        print("\ndensepose train: stopping after this step (checkpoint follows); "
              "signal again to stop at once", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _LossModule(torch.nn.Module):
    """The training losses as a module's forward: DistributedDataParallel wraps this (it
    synchronises the gradients of what its forward computes)."""

    def __init__(self, model: DensePoseRCNN, detection_cfg) -> None:
        super().__init__()
        self.model = model
        self.detection_cfg = detection_cfg

    def forward(self, batch: TrainingBatch, generator: torch.Generator) -> TrainingStepOutput:
        return training_step_losses(self.model, batch, self.detection_cfg, generator)


@dataclass
class _Run:
    """A run being trained: its directory, device, model, optimiser, data and TensorBoard
    (``writer`` None on every process but the main one, and where tensorboard is missing)."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    use_amp: bool
    sampling_generator: torch.Generator
    model: DensePoseRCNN
    model_cfg: ModelConfig
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    start_iteration: int
    loader: DataLoader
    writer: Any
    context: DistributedContext
    losses: torch.nn.Module  # _LossModule, wrapped in DistributedDataParallel when distributed
    autocast_dtype: torch.dtype | None  # float16 (with the scaler), bfloat16, or None

    @property
    def checkpoint_path(self) -> Path:
        """The resumable checkpoint, last.pth."""
        return self.out / LAST_CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        """The metrics log, metrics.jsonl."""
        return self.out / METRICS_FILE

    def step(self, batch: TrainingBatch, lr: float, iteration: int
             ) -> tuple[TrainingStepOutput, torch.Tensor, float]:
        """One optimiser step at learning rate `lr`: the losses, their total and the gradient
        norm (nan when not clipped); a non-finite loss is a TrainingError."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            output = self.losses(batch, self.sampling_generator)
        loss = output.total()
        if not torch.isfinite(loss):
            values = {k: float(v) for k, v in output.losses.items()}
            raise TrainingError(f"loss is not finite at step {iteration + 1}: {values}; "
                                "lower solver.base_lr or raise solver.warmup_iters")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = float("nan")
        if cfg.solver.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                             cfg.solver.clip_grad_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return output, loss, grad_norm

    def log(self, row: dict[str, Any], metrics_file: TextIO) -> None:
        """Append a metrics row to metrics.jsonl (flushed) and to TensorBoard."""
        metrics_file.write(json.dumps(row) + "\n")
        metrics_file.flush()
        if self.writer is not None:
            for key, value in row.items():
                if key != "iteration":
                    self.writer.add_scalar(f"train/{key}", value, row["iteration"])

    def preview(self, batch: TrainingBatch, iteration: int) -> None:
        """Write previews/iter_NNNNNNN.png (and the TensorBoard image) of `batch`."""
        preview = preview_image(self.model, self.model_cfg, batch)
        preview_path = self.out / "previews" / f"iter_{iteration:07d}.png"
        preview_path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(preview_path), preview)
        if self.writer is not None:
            self.writer.add_image("preview/prediction_vs_truth",
                                  preview[:, :, ::-1].copy(), iteration, dataformats="HWC")

    def save_checkpoint(self, iteration: int) -> None:
        """Write the resumable last.pth and redraw the loss curve."""
        state = {"iteration": iteration, "optimizer": self.optimizer.state_dict(),
                 "rng": _rng_state(self.sampling_generator), "train_config": self.cfg.to_dict()}
        if self.use_amp:
            state["scaler"] = self.scaler.state_dict()
        save_weights(self.checkpoint_path, self.model, self.model_cfg,
                     metadata={"iteration": iteration},
                     training_state=state)
        draw_loss_curve(read_metrics(self.metrics_path), self.out / LOSS_CURVE)


# Logged values that count things in the batch (anchors, RoIs).
_BATCH_COUNTS = ("positive_anchors", "foreground_rois")


class _MetricWindow:
    """Sums of the logged values over the steps since the previous log line."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.steps = 0
        self.clock = time.time()

    def add(self, loss: torch.Tensor, grad_norm: float, output: TrainingStepOutput) -> None:
        """Add one step's loss, gradient norm, sample counts and individual losses."""
        totals = self.totals
        totals["loss"] = totals.get("loss", 0.0) + loss.item()
        totals["grad_norm"] = totals.get("grad_norm", 0.0) + grad_norm
        totals["positive_anchors"] = (totals.get("positive_anchors", 0.0)
                                      + output.num_positive_anchors)
        totals["foreground_rois"] = (totals.get("foreground_rois", 0.0)
                                     + output.num_foreground_rois)
        for name, value in output.losses.items():
            totals[name] = totals.get(name, 0.0) + value.item()
        self.steps += 1

    def take(self, iteration: int, lr: float) -> dict[str, Any]:
        """The metrics row of step `iteration` (means over the window); starts a new window."""
        now = time.time()
        # every process logs the same steps with the same keys: means over all of them
        # (a collective per value; the log period keeps it rare)
        world = distributed.world_size()
        row = {"iteration": iteration, "lr": lr,
               "seconds_per_iter": (now - self.clock) / self.steps,
               # counts over the global batch; losses and norms: means over processes
               **{name: distributed.global_sum(total) / self.steps
                  / (1 if name in _BATCH_COUNTS else world)
                  for name, total in self.totals.items()}}
        self.totals, self.steps, self.clock = {}, 0, now
        return row


def _training_device(cfg: TrainConfig, context: DistributedContext) -> torch.device:
    """The device to train on (a bad name is a TrainingError); sets torch's thread count.
    Distributed on CUDA, each process takes the GPU of its local rank."""
    try:
        device = resolve_device(cfg.device)
    except ValueError as error:
        raise TrainingError(str(error)) from error
    if context.enabled and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    return device


def _resumed_model(cfg: TrainConfig, checkpoint_path: Path
                   ) -> tuple[DensePoseRCNN, ModelConfig, dict[str, Any]]:
    """Model, its config and the training state of the checkpoint `--resume` continues."""
    if not checkpoint_path.is_file():
        raise TrainingError(f"--resume: no checkpoint {checkpoint_path} to resume from")
    model_cfg, state, training_state = read_training_checkpoint(checkpoint_path)
    if model_cfg.name != cfg.model:
        raise TrainingError(f"--resume: {checkpoint_path} trains {model_cfg.name}, the "
                            f"config says {cfg.model}")
    model = build_model(model_cfg)
    model.load_state_dict(state, strict=True)
    return model, model_cfg, training_state


def _restore_training_state(training_state: dict[str, Any], optimizer: torch.optim.Optimizer,
                            scaler: torch.amp.GradScaler, use_amp: bool,
                            sampling_generator: torch.Generator) -> int:
    """Load the optimiser, scaler and RNG state of a checkpoint; its step."""
    try:
        optimizer.load_state_dict(training_state["optimizer"])
        if "scaler" in training_state and use_amp:
            scaler.load_state_dict(training_state["scaler"])
    except (ValueError, KeyError) as error:
        raise TrainingError(f"--resume: optimiser state does not fit ({error})") from error
    _restore_rng(training_state["rng"], sampling_generator)
    return int(training_state["iteration"])


def _prepare_logs(cfg: TrainConfig, out: Path, start_iteration: int) -> None:
    """Start metrics.jsonl afresh, or cut it back to the resumed step; write the config."""
    metrics_path = out / METRICS_FILE
    if start_iteration == 0:
        metrics_path.unlink(missing_ok=True)
    else:  # drop lines logged after the checkpoint (the lost interval)
        kept = [r for r in read_metrics(metrics_path) if r["iteration"] <= start_iteration]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))


def _start_run(cfg: TrainConfig, resume: bool, context: DistributedContext) -> _Run:
    """Set up the run directory, device, model, optimiser and data (from `last.pth` when
    resuming); join the process group when distributed."""
    if cfg.batch_size % context.world_size:
        raise TrainingError(f"batch_size {cfg.batch_size} (the global batch) does not split "
                            f"evenly over {context.world_size} processes")
    out = Path(cfg.output_dir)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
    device = _training_device(cfg, context)
    distributed.start(context, device)
    use_amp = cfg.precision == "auto" and cfg.amp and device.type == "cuda"
    autocast_dtype = torch.float16 if use_amp else (
        torch.bfloat16 if cfg.precision == "bf16" else None)
    sampling_generator = torch.Generator()
    # RoI and anchor sampling: its own draws in each process
    sampling_generator.manual_seed(cfg.seed + 7919 * context.rank)
    training_state: dict[str, Any] | None = None
    if resume:
        model, model_cfg, training_state = _resumed_model(cfg, out / LAST_CHECKPOINT)
    else:
        model, model_cfg = initial_model(cfg)
    if context.enabled:  # before the optimiser: it replaces the norms' parameters
        distributed.synchronise_batch_norms(model)  # statistics of the global batch
    model.to(device).train()
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_iteration = 0
    if training_state is not None:
        start_iteration = _restore_training_state(training_state, optimizer, scaler, use_amp,
                                                  sampling_generator)
        if context.rank > 0:  # the checkpoint holds the main process's generator
            sampling_generator.manual_seed(cfg.seed + 7919 * context.rank + start_iteration)
    losses: torch.nn.Module = _LossModule(model, cfg.detection)
    if context.enabled:
        # also makes every process start from the main process's weights
        losses = torch.nn.parallel.DistributedDataParallel(
            losses, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False)
    # Data order depends on where the run (re)starts, so a resumed run sees new batches; it
    # does not depend on the number of processes (data.sampling).
    loader = build_loader(cfg, model_cfg, seed=cfg.seed * 1_000_003 + start_iteration,
                          context=context)
    writer = None
    if context.is_main:
        _prepare_logs(cfg, out, start_iteration)
        writer = _summary_writer(out / "tb")
    return _Run(cfg, out, device, use_amp, sampling_generator, model, model_cfg, optimizer,
                scaler, start_iteration, loader, writer, context, losses, autocast_dtype)


def _end_iteration(max_iter: int, start_iteration: int, stop_after: int | None,
                   stop_at: int | None) -> int:
    """The step this call stops at: ``max_iter``, or earlier per `stop_after`/`stop_at`."""
    end_iteration = max_iter
    if stop_after is not None:
        end_iteration = min(end_iteration, start_iteration + stop_after)
    if stop_at is not None:
        end_iteration = min(end_iteration, max(stop_at, start_iteration))
    return end_iteration


def _due(iteration: int, period: int, end_iteration: int, stop: _StopRequest) -> bool:
    """Whether step `iteration` logs (or checkpoints): every `period` steps, at the last step
    of this call and when a stop was requested (checked now: a signal may come mid-step)."""
    return iteration % period == 0 or iteration == end_iteration or stop.requested


def _train_steps(run: _Run, end_iteration: int, progress: bool) -> int:
    """Train from the run's start to `end_iteration` (or a stop signal) with logging,
    previews and checkpoints; the step reached."""
    cfg = run.cfg
    main = run.context.is_main
    bar = tqdm(total=cfg.solver.max_iter, initial=run.start_iteration, desc="densepose train",
               unit="it", disable=not (progress and main), dynamic_ncols=True,
               file=sys.stderr)
    iteration = run.start_iteration
    window = _MetricWindow()
    metrics = run.metrics_path.open("a") if main else contextlib.nullcontext()
    with metrics as metrics_file, _StopRequest() as stop:
        data = iter(run.loader)
        while iteration < end_iteration and not stop.requested:
            batch = batch_to(next(data), run.device)
            lr = learning_rate(cfg, iteration)
            output, loss, grad_norm = run.step(batch, lr, iteration)
            iteration += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
            window.add(loss, grad_norm, output)
            if run.context.enabled:  # a signal reaches the processes at different steps
                stop.requested = distributed.any_process(stop.requested)
            if _due(iteration, cfg.log_period, end_iteration, stop):
                row = window.take(iteration, lr)  # every process: a collective
                if main:
                    run.log(row, metrics_file)
            if main and cfg.preview_period and iteration % cfg.preview_period == 0:
                run.preview(batch, iteration)
            if main and _due(iteration, cfg.checkpoint_period, end_iteration, stop):
                metrics_file.flush()
                run.save_checkpoint(iteration)
    bar.close()
    return iteration


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, stop_at: int | None = None) -> TrainingResult:
    """Train per `cfg` (see the module docstring); `stop_after` ends this call after that many
    steps, `stop_at` once the run reaches that step (a checkpoint is written either way, and
    the schedule still runs to ``max_iter``, so the weights equal those of an uninterrupted
    run at that step). SIGINT/SIGTERM end it after the current step, with a checkpoint."""
    cfg.validate()
    started = time.time()
    context = distributed.context_from_env()
    try:
        run = _start_run(cfg, resume, context)
        end_iteration = _end_iteration(cfg.solver.max_iter, run.start_iteration, stop_after,
                                       stop_at)
        iteration = _train_steps(run, end_iteration, progress)
        if run.writer is not None:
            run.writer.close()
        final = None
        if iteration >= cfg.solver.max_iter and context.is_main:
            final = save_weights(run.out / FINAL_WEIGHTS, run.model, run.model_cfg,
                                 metadata={"iteration": iteration})
    finally:
        distributed.stop()
    return TrainingResult(run.out, run.start_iteration, iteration, run.checkpoint_path, final,
                          time.time() - started)


def _summary_writer(path: Path):
    """TensorBoard writer, or None when tensorboard is not installed (logs still go to
    metrics.jsonl and loss_curve.png)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("densepose train: tensorboard not installed; no TensorBoard logs",
              file=sys.stderr)
        return None
    return SummaryWriter(str(path))


def export_deployable_weights(checkpoint: Path | str, out: Path | str, half: bool = True
                              ) -> Path:
    """Weights of a training checkpoint without its training state, float16 if `half`."""
    model_cfg, state, metadata = read_weights(checkpoint)
    model = build_model(model_cfg)
    model.load_state_dict(state, strict=True)
    metadata["stored_as"] = "float16" if half else "float32"
    return save_weights(out, model, model_cfg, metadata=metadata,
                        storage_dtype=torch.float16 if half else None)


def checkpoint_train_config(path: Path | str) -> TrainConfig:
    """The training configuration stored in a resumable checkpoint."""
    _, _, training_state = read_training_checkpoint(Path(path))
    return train_config_from_dict(training_state["train_config"])
