"""Training configuration: one dataclass tree holding every default, YAML files and overrides.

``load_train_config("config/train/lite_synthetic.yaml", ["solver.max_iter=100"])`` starts from
``TrainConfig()``, applies the YAML file (nested mappings, only known keys) and then each
``key=value`` override (dotted keys; values parsed as YAML, so ``1e-3``, ``[1, 2]``,
``true`` and ``null`` work). Unknown keys, wrong types and a missing dataset list raise
``TrainConfigError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from densepose_ros.data.transforms import AugmentationConfig
from densepose_ros.training.detection import DetectionTrainingConfig

# Training precisions (TrainConfig.precision).
PRECISIONS = ("auto", "fp32", "bf16")


class TrainConfigError(ValueError):
    """A training configuration file or override that cannot be used."""


@dataclass
class DatasetEntry:
    """One training source (see ``densepose_ros.data.dataset.DatasetSpec``).

    Relative paths are relative to the current directory."""

    # DensePose-COCO style JSON (e.g. written by `densepose synth`); required.
    annotations: str = ""
    # Images directory; null: images/ next to the JSON, else the JSON's directory.
    images: str | None = None
    # Chart symmetry for horizontal flips, to be named for every source while flips are on:
    # "anny" (`densepose synth` and `densepose label` data), the path of DensePose's
    # UV_symmetry_transforms.mat/.npz (DensePose-COCO), or null (this source is not flipped).
    # Not given ("") is an error then: another body's map would silently mislabel flips.
    symmetry: str | None = ""
    # Relative share of this source in the mix.
    ratio: float = 1.0
    # "coco": the annotated points; "distill": a `densepose label` folder, trained on the
    # teacher's dense charts (every sure pixel; soft part targets when stored).
    type: str = "coco"
    # distill: least teacher probability of a pixel that gets a U/V target.
    uv_confidence: float = 0.8
    # distill: the teacher's stored part probabilities as soft targets (else its labels).
    soft_targets: bool = True
    # distill: every n-th pixel in x and y (1: every pixel).
    point_stride: int = 1
    # distill: at most this many pixels per person each time an image is drawn, a fresh
    # random subset each time (every RoI on a person trains on all of its points, so tens
    # of thousands would make a step take seconds); 0: all.
    max_points: int = 300


@dataclass
class SolverConfig:
    """Optimiser and learning-rate schedule."""

    # "sgd" (detectron2: momentum 0.9) or "adamw" (converges faster from scratch).
    optimizer: str = "sgd"
    # Learning rate after warm-up, for `batch_size` images per step.
    base_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # Optimisation steps in all.
    max_iter: int = 130_000
    # Linear warm-up from base_lr * warmup_factor to base_lr over this many steps.
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    # After warm-up: "steps" (x gamma at each of `steps`) or "cosine" (down to 0 at max_iter).
    schedule: str = "steps"
    steps: tuple[int, ...] = (100_000, 120_000)
    gamma: float = 0.1
    # Clip the global gradient norm to this (0: no clipping); guards early from-scratch steps.
    clip_grad_norm: float = 10.0


@dataclass
class TrainConfig:
    """Everything one training run needs."""

    # Named model configuration (densepose_ros.modeling.config).
    model: str = "R_18_FPN_lite"
    # Starting weights: "" (from scratch), a densepose_ros .pth of the same model, a
    # detectron2 model .pkl/.pth (imported as with `densepose import-d2`), a model-zoo name,
    # "imagenet" (torchvision's ImageNet ResNet-18/50/101 backbone, downloaded once and
    # cached) or a detectron2 ImageNet backbone pickle (R-50.pkl, R-101.pkl).
    init_weights: str = ""
    datasets: list[DatasetEntry] = field(default_factory=list)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    detection: DetectionTrainingConfig = field(default_factory=DetectionTrainingConfig)
    # Images per optimisation step.
    batch_size: int = 4
    # DataLoader worker processes (0: load in the training process).
    num_workers: int = 2
    # Seeds model initialisation, data order, augmentation and RoI sampling.
    seed: int = 0
    # "auto" (CUDA if available), "cpu" or "cuda[:k]".
    device: str = "auto"
    # Mixed precision (float16 autocast + gradient scaling); used on CUDA only, with
    # precision "auto".
    amp: bool = True
    # "auto" (float16 per `amp` on CUDA, float32 on CPU), "fp32", or "bf16": bfloat16
    # autocast with float32 master weights and no loss scaling, on CPUs with AVX512-BF16 or
    # AMX (and on CUDA); 1.35x faster steps on such a CPU (benchmarks/bench_train_precision.py).
    precision: str = "auto"
    # Torch CPU threads (0: torch's default).
    torch_threads: int = 0
    # Run directory: checkpoints, metrics.jsonl, TensorBoard logs, loss_curve.png, previews.
    output_dir: str = "runs/train"
    # Write the resumable checkpoint every this many steps (and at the end).
    checkpoint_period: int = 500
    # Log scalars (TensorBoard, metrics.jsonl) every this many steps.
    log_period: int = 20
    # Write a prediction-vs-ground-truth preview every this many steps (0: never).
    preview_period: int = 500

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ``TrainConfigError`` for settings that cannot work."""
        if not self.datasets:
            raise TrainConfigError("missing config key 'datasets': give at least one "
                                   "{annotations: PATH} entry")
        for k, entry in enumerate(self.datasets):
            if not entry.annotations:
                raise TrainConfigError(f"datasets[{k}]: missing key 'annotations'")
            if entry.symmetry == "" and self.augmentation.flip_probability > 0:
                raise TrainConfigError(
                    f"datasets[{k}] ({entry.annotations}): missing key 'symmetry', needed "
                    "for horizontal flips: 'symmetry: anny' for densepose synth/label data, "
                    "'symmetry: PATH/UV_symmetry_transforms.mat' for DensePose-COCO, or "
                    "'symmetry: null' to train this source without flips")
        if self.solver.optimizer not in ("sgd", "adamw"):
            raise TrainConfigError(f"solver.optimizer: expected 'sgd' or 'adamw', got "
                                   f"{self.solver.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise TrainConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got "
                                   f"{self.precision!r}")
        if self.solver.schedule not in ("steps", "cosine"):
            raise TrainConfigError(f"solver.schedule: expected 'steps' or 'cosine', got "
                                   f"{self.solver.schedule!r}")
        for name in ("batch_size", "checkpoint_period", "log_period"):
            if getattr(self, name) < 1:
                raise TrainConfigError(f"{name}: must be at least 1")
        if self.solver.max_iter < 1:
            raise TrainConfigError("solver.max_iter: must be at least 1")


def _convert(value: Any, hint: Any, where: str) -> Any:
    """`value` (parsed YAML) as the annotated type `hint`, or a TrainConfigError."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TrainConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except TrainConfigError as error:
                errors.append(str(error))
        raise TrainConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise TrainConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1]
        items = [_convert(v, item, f"{where}[{k}]") for k, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise TrainConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, "
                           f"got {value!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """``cls`` from its defaults updated by `data` (nested); unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TrainConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    base = cls()
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        default = getattr(base, name)
        if dataclasses.is_dataclass(default):
            # nested sections start from their own defaults (the field defaults are those)
            if not isinstance(value, dict):
                raise TrainConfigError(f"{key}: expected a mapping, got {value!r}")
            kwargs[name] = _build(type(default), value, key)
        else:
            kwargs[name] = _convert(value, hints[name], key)
    return dataclasses.replace(base, **kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TrainConfigError(f"override {dotted}: '{part}' is not a mapping")
    node[parts[-1]] = value


def _check_override_key(dotted: str) -> None:
    """Reject an override whose key path does not exist in ``TrainConfig``."""
    obj: Any = TrainConfig()
    walked = []
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in
                                                             dataclasses.fields(obj)}:
            where = ".".join(walked) or "the top level"
            raise TrainConfigError(f"unknown override key '{dotted}' ('{part}' is not a key "
                                   f"of {where})")
        walked.append(part)
        obj = getattr(obj, part)


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
                      ) -> TrainConfig:
    """``TrainConfig`` from a YAML file (None: defaults only) and ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise TrainConfigError(f"training config not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise TrainConfigError(f"{path}: invalid YAML ({error})") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise TrainConfigError(f"{path}: expected a mapping at the top level")
        data = loaded or {}
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise TrainConfigError(f"override {override!r}: expected key=value")
        _check_override_key(key)
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as error:
            raise TrainConfigError(f"override {override!r}: invalid value ({error})") from error
        _set_dotted(data, key, value)
    config = _build(TrainConfig, data, "")
    config.validate()
    return config


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a configuration from ``TrainConfig.to_dict`` output (as stored in checkpoints)."""
    return _build(TrainConfig, data, "")
