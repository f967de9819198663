"""Backend selection: ``create_backend(name, weights, device)``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from densepose_ros import paths
from densepose_ros.runtime.base import Backend, BackendUnavailable

BACKEND_NAMES = ("auto", "tensorrt", "onnxruntime", "torch")


def resolve_weights(weights: str | Path | None) -> Path | None:
    """The model file to load: ``weights`` if given (must exist), else the bundled default
    model, else None."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        return path
    return paths.default_model_path()


def available_backends() -> dict[str, str]:
    """Backends usable here -> why (or why not, prefixed with 'unavailable: ')."""
    found = {"torch": "PyTorch is installed"}
    if importlib.util.find_spec("onnxruntime") is None:
        found["onnxruntime"] = "unavailable: onnxruntime is not installed"
    else:
        found["onnxruntime"] = "unavailable: ONNX export is not built yet"
    found["tensorrt"] = "unavailable: TensorRT backend is not built yet"
    return found


def create_backend(
    name: str, weights: str | Path | None = None, device: str = "auto", *,
    allow_untrained: bool = False, untrained_config: str = "",
) -> tuple[Backend, str]:
    """A ready backend and the reason it was chosen.

    Raises ``FileNotFoundError`` when no model is available (no ``weights``, no bundled
    default, and ``allow_untrained`` false), ``ValueError`` for an unusable model file and
    ``BackendUnavailable`` when the named backend cannot run here.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    path = resolve_weights(weights)
    if path is None and not allow_untrained:
        raise FileNotFoundError(
            "no model: the 'weights' parameter is empty and no bundled default model is "
            f"installed (looked in: {', '.join(map(str, paths.model_dirs())) or 'nowhere'}). "
            "Give weights (see `densepose import-d2`) or set allow_untrained:=true for an "
            "untrained model (plumbing tests only)."
        )
    available = available_backends()
    if name == "auto":
        name, reason = "torch", "auto: the only backend available here"
    else:
        reason = f"requested; {available[name]}"
        if available[name].startswith("unavailable"):
            raise BackendUnavailable(f"backend '{name}' {available[name]}")
    from densepose_ros.runtime.torch_backend import TorchBackend

    if path is None:
        return TorchBackend.untrained(untrained_config or None, device), reason + "; UNTRAINED"
    return TorchBackend.from_weights(path, device), reason
