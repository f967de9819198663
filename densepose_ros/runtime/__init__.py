"""Inference backends behind one small interface (``base.Backend``).

``create_backend(name, weights, device)`` returns a ready backend and the reason it was
chosen: ``torch`` (eager PyTorch, CPU or CUDA), ``onnxruntime`` (the exported graphs on the
TensorRT, CUDA or CPU execution provider), ``openvino`` (the same graphs, Intel CPU or GPU) or
``tensorrt`` (engines on a CUDA device); ``auto`` picks the best available. The stages through
the graphs are written once (``graph_pipeline``); the glue between the graphs is
``numpy_pipeline`` for onnxruntime and OpenVINO (no torch in the process) and
``split_pipeline`` (the model's torch code, on CUDA) for TensorRT; ``calibration`` records
INT8 calibration inputs.
"""

from densepose_ros.runtime.base import Backend, BackendUnavailable, InferenceSettings
from densepose_ros.runtime.factory import available_backends, create_backend

__all__ = [
    "Backend", "BackendUnavailable", "InferenceSettings", "available_backends", "create_backend",
]
