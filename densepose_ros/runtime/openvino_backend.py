"""OpenVINO backend: the exported ONNX graphs compiled by OpenVINO for an Intel CPU or GPU.

The same graphs as the onnxruntime backend (``weights``: an export folder, or a ``.pth``
exported once into the cache), read by OpenVINO directly, so there is no second export
format to keep in step; the glue between the graphs is the shared ``NumpySplitPipeline``.

Device: ``cpu``, ``gpu`` (an Intel GPU, ``GPU.N`` for one of several) or ``auto``/empty (the
GPU when OpenVINO sees one, else the CPU). Precision: ``fp32``, ``bf16`` (CPUs with native
bfloat16: AMX or AVX512-BF16) or ``fp16`` (GPUs): the ``precision`` argument, else
$DENSEPOSE_OV_PRECISION, else the device's fast one (``default_precision``: bf16 on such
CPUs, fp16 on GPUs, else fp32; as OpenVINO itself does). bf16 is 1.5-4x faster than fp32
at AP(GPS) -0.2 (README, "Performance"); fp32 gives onnxruntime's results. Graphs quantised
to INT8 (``densepose export --int8``) run in INT8 whatever this setting says.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from densepose_ros.export.bundle import OnnxBundle, is_bundle, load_bundle
from densepose_ros.export.cache import cached_export, cached_untrained_export
from densepose_ros.export.names import graph_names
from densepose_ros.inference.precision import (
    BF16,
    FP16,
    FP32,
    OPENVINO_PRECISIONS,
    check_precision,
)
from densepose_ros.runtime.base import BackendUnavailable, GraphBackend, cpu_threads
from densepose_ros.runtime.numpy_pipeline import NumpySplitPipeline

log = logging.getLogger(__name__)

PRECISION_ENV = "DENSEPOSE_OV_PRECISION"
# OpenVINO's names for our precisions (its INFERENCE_PRECISION_HINT)
_OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def default_precision(device: str = "CPU") -> str:
    """The precision used unless told otherwise on OpenVINO ``device``."""
    if device.startswith("GPU"):
        return FP16
    return BF16 if cpu_has_bf16() else FP32


def resolve_precision(precision: str | None = None, device: str = "CPU") -> str:
    """`precision`, else $DENSEPOSE_OV_PRECISION, else ``default_precision(device)``;
    ValueError for anything but fp32, bf16, fp16."""
    chosen = precision or os.environ.get(PRECISION_ENV) or default_precision(device)
    source = "OpenVINO" if precision else f"OpenVINO (${PRECISION_ENV})"
    return check_precision(chosen, OPENVINO_PRECISIONS, source)


def choose_device(device: str, available: list[str]) -> str:
    """OpenVINO's device name for ours ('cpu', 'gpu', 'gpu.1', 'auto'/'')."""
    gpus = [d for d in available if d.startswith("GPU")]
    if device in ("", "auto"):
        return gpus[0] if gpus else "CPU"
    name = device.upper()
    if name == "GPU" and gpus:
        return gpus[0]
    if name == "CPU" or name in available:
        return name
    raise BackendUnavailable(f"device '{device}' is not one OpenVINO sees here (available: "
                             f"{', '.join(available)}; use cpu, gpu, gpu.N or auto)")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes bfloat16 natively here (AMX, AVX512-BF16)."""
    try:
        import openvino as ov
    except ImportError:
        return False
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(GraphBackend):
    name = "openvino"

    def __init__(self, bundle: OnnxBundle, device: str = "auto", precision: str | None = None,
                 untrained: bool = False, source: str = ""):
        try:
            import openvino as ov
        except ImportError as error:
            raise BackendUnavailable("openvino is not installed") from error
        core = ov.Core()
        self.bundle = bundle
        self.untrained = untrained
        self.device = choose_device(device, core.available_devices)
        self.precision = resolve_precision(precision, self.device)
        if self.precision == BF16 and self.device == "CPU" and not cpu_has_bf16():
            raise BackendUnavailable("OpenVINO bf16 needs a CPU with native bfloat16 (AMX or "
                                     "AVX512-BF16); this one has none: use fp32")
        config = {
            "PERFORMANCE_HINT": "LATENCY",  # one frame at a time, as fast as possible
            "INFERENCE_PRECISION_HINT": _OV_TYPES[self.precision],
        }
        if self.device == "CPU":
            # The thread count PyTorch uses (``cpu_threads``), as the onnxruntime backend.
            config["INFERENCE_NUM_THREADS"] = cpu_threads()
        self.requests = {}
        self.output_names = {}
        for graph in graph_names(bundle.config):
            path = bundle.path(graph)
            try:
                compiled = core.compile_model(core.read_model(str(path)), self.device, config)
            except Exception as error:  # OpenVINO raises untyped RuntimeErrors
                raise ValueError(f"{path}: OpenVINO cannot compile this graph for "
                                 f"{self.device} ({error})") from error
            self.requests[graph] = compiled.create_infer_request()
            self.output_names[graph] = [o.get_any_name() for o in compiled.outputs]
        self.pipeline = NumpySplitPipeline(bundle.config, self.run_graph)
        quantised = " int8" if bundle.extra.get("quantization") else ""
        self._description = (f"openvino/{self.device} {self.precision}{quantised} "
                             f"{bundle.config.name} ({source or bundle.directory.name})"
                             + (" UNTRAINED" if untrained else ""))

    def device_name(self) -> str:
        if self.device == "CPU":
            return "cpu"
        import openvino as ov

        return ov.Core().get_property(self.device, "FULL_DEVICE_NAME")

    def run_graph(self, graph: str, array: np.ndarray) -> dict[str, np.ndarray]:
        request = self.requests[graph]
        request.infer([np.ascontiguousarray(array, dtype=np.float32)])
        # copies: the request's output buffers are reused by its next run
        return {name: request.get_output_tensor(i).data.copy()
                for i, name in enumerate(self.output_names[graph])}

    @classmethod
    def from_weights(cls, path: Path, device: str = "auto", precision: str | None = None
                     ) -> OpenVinoBackend:
        """From an export folder, or a ``.pth`` (exported once into the cache)."""
        path = Path(path)
        bundle = load_bundle(path) if is_bundle(path) or path.is_dir() else cached_export(path)
        return cls(bundle, device, precision, source=path.name)

    @classmethod
    def untrained(cls, config_name: str | None, device: str = "auto",
                  precision: str | None = None) -> OpenVinoBackend:
        """Untrained model (seed 0, as ``TorchBackend.untrained``), exported into the cache."""
        return cls(cached_untrained_export(config_name), device, precision, untrained=True,
                   source="untrained")

    def close(self) -> None:
        self.requests = {}
        self.pipeline = None
