"""Weight files: the project's own format and import of detectron2 checkpoints.

Own format (``.pth``, written by ``save_weights``): a torch pickle of plain containers
``{"format": "densepose_ros", "version": 1, "config_name": str, "config": dict,
"state_dict": {key: tensor}, "metadata": dict}``, so ``load_model(path)`` needs nothing else.

detectron2 files: model-zoo ``.pkl`` (``{"model": {key: numpy array}, ...}``) and
``.pth`` checkpoints saved by detectron2 (``{"model": {key: tensor}, ...}``).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from densepose_ros.modeling.config import ModelConfig, get_config
from densepose_ros.modeling.model import build_model

FORMAT_NAME = "densepose_ros"
FORMAT_VERSION = 1
# BatchNorm's training-step counter: carries no weights, detectron2 files may lack it.
_COUNTER_SUFFIX = "num_batches_tracked"


def save_weights(path: str | os.PathLike, model: nn.Module, cfg: ModelConfig,
                 metadata: dict[str, Any] | None = None,
                 storage_dtype: torch.dtype | None = None,
                 training_state: dict[str, Any] | None = None) -> Path:
    """Write `model`'s weights with its configuration, atomically (temp file + rename).

    `storage_dtype` (e.g. ``torch.float16``) stores the floating-point tensors in that type
    (half the file size); ``load_model`` casts them back to the model's float32.
    `training_state` (optimiser state, iteration, ...) is kept under ``"training_state"``
    for resuming; ``load_model`` ignores it."""
    if getattr(model, "norms_folded", False):
        raise ValueError("cannot save a model whose norms were folded for inference; "
                         "save the model as loaded or trained")
    path = Path(path)

    def stored(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.detach().cpu()
        if storage_dtype is not None and torch.is_floating_point(tensor):
            tensor = tensor.to(storage_dtype)
        return tensor.contiguous()

    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config_name": cfg.name,
        "config": cfg.to_dict(),
        "state_dict": {k: stored(v) for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    if training_state is not None:
        payload["training_state"] = training_state
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        # mkstemp makes the file private (0600); a weights file is as readable as any file
        # the user creates (a shared model cache, a robot's other accounts).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_weights(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor],
                                                    dict[str, Any]]:
    """Configuration, state dict and metadata of one of our weight files (clear errors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError,
            OSError) as error:
        raise ValueError(f"{path}: not a readable weights file ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        hint = ""
        if isinstance(payload, dict) and "model" in payload:
            hint = "; it looks like a detectron2 checkpoint: convert it with `densepose import-d2`"
        raise ValueError(f"{path}: not a densepose_ros weights file{hint}")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported weights format version {payload.get('version')}")
    try:
        cfg = ModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid model configuration ({error})") from error
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: has no state_dict")
    return cfg, state, dict(payload.get("metadata") or {})


def check_state_dict(expected: dict[str, torch.Tensor], given: dict[str, Any],
                     source: str) -> None:
    """Raise ValueError naming every missing key, unexpected key and wrong shape."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    bad = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(np.shape(given[k]))}"
        for k in expected
        if k in given and tuple(np.shape(given[k])) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if bad:
        problems.append(f"wrong shapes: {'; '.join(bad)}")
    if problems:
        raise ValueError(f"{source}: " + " | ".join(problems))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, ModelConfig]:
    """Build the model a weights file describes and load it (eval mode, on `device`)."""
    cfg, state, _ = read_weights(path)
    model = build_model(cfg)
    check_state_dict(model.state_dict(), state, f"{path} (config {cfg.name})")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), cfg


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles detectron2 model-zoo files, which hold only containers and numpy arrays.
    Any other class is refused: a pickle can run arbitrary code, and these files come from
    the network (or a mirror)."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a weights file holds only arrays")


def _load_detectron2_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"detectron2 checkpoint not found: {path}")
    data: Any
    if path.suffix == ".pkl":
        try:
            with open(path, "rb") as f:
                data = _ArrayUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                IndexError) as error:
            raise ValueError(f"{path}: not a readable pickle ({error})") from error
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile,
                ValueError) as error:
            raise ValueError(f"{path}: not a readable torch checkpoint ({error})") from error
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return data["model"]
    if isinstance(data, dict) and data and all(isinstance(k, str) for k in data) and all(
        isinstance(v, np.ndarray | torch.Tensor) for v in data.values()
    ):
        return data  # a bare state dict
    raise ValueError(f"{path}: expected a detectron2 checkpoint {{'model': {{key: array}}}}")


def import_detectron2(path: str | os.PathLike, config_name: str) -> dict[str, torch.Tensor]:
    """State dict for `config_name` from a detectron2 ``.pkl``/``.pth`` checkpoint.

    Every key of the file must be used and every shape must match the configuration; the
    error names each missing or unexpected key and each wrong shape. Training-only counters
    (``num_batches_tracked``) are the one tolerated extra.
    """
    cfg = get_config(config_name)
    path = Path(path)
    raw = _load_detectron2_file(path)
    counters = {k: v for k, v in raw.items() if k.endswith(_COUNTER_SUFFIX)}
    raw = {k: v for k, v in raw.items() if k not in counters}
    expected_all = build_model(cfg).state_dict()
    expected = {k: v for k, v in expected_all.items() if not k.endswith(_COUNTER_SUFFIX)}
    check_state_dict(expected, raw, f"{path} (config {cfg.name})")
    state = {}
    for key, value in raw.items():
        tensor = torch.as_tensor(np.asarray(value)) if isinstance(value, np.ndarray) else value
        if not torch.is_floating_point(tensor):
            raise ValueError(f"{path}: {key} has non-float dtype {tensor.dtype}")
        state[key] = tensor.to(expected[key].dtype).contiguous()
    for key in expected_all.keys() - expected.keys():  # trainable BN of our own configs
        state[key] = torch.as_tensor(np.asarray(counters.get(key, 0)), dtype=torch.int64)
    return state
