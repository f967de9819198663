"""Inference backends behind one small interface (see ``base.Backend``).

``create_backend(name, weights, device)`` returns a ready backend: ``torch`` (CPU/CUDA
eager PyTorch); ``onnxruntime`` and ``tensorrt`` are added by the export work. ``auto``
picks the best available and reports why.
"""

from densepose_ros.runtime.base import Backend, BackendUnavailable, InferenceSettings
from densepose_ros.runtime.factory import available_backends, create_backend

__all__ = [
    "Backend", "BackendUnavailable", "InferenceSettings", "available_backends", "create_backend",
]
