"""TensorRT backend: the three engines of an export on one CUDA device, glue in PyTorch.

Inputs and outputs are torch CUDA tensors whose addresses are handed to TensorRT, and work
is enqueued on PyTorch's current CUDA stream, so the glue (proposal selection, NMS, RoIAlign)
and the engines run on one stream without copies to the host (no pycuda).

``weights`` may be an export folder or a ``.pth`` (exported once into the cache). Engines
come from ``ensure_engines`` (built on first use, cached, rebuilt when they do not match the
export/TensorRT/GPU). Precision: the ``precision`` argument, else $DENSEPOSE_TRT_PRECISION,
else ``EngineBuildOptions``' default (fp16); int8 needs engines built beforehand with
``densepose build-engine --int8 --calib ...``, since calibration images are not available at
start-up.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from densepose_ros.export.bundle import OnnxBundle, is_bundle, load_bundle
from densepose_ros.export.names import GRAPH_NAMES, graph_names
from densepose_ros.export.tensorrt_engine import (
    EngineBuildOptions,
    EngineError,
    engine_path,
    ensure_engines,
    expected_info,
    mismatch,
)
from densepose_ros.inference.precision import DEFAULT_ENGINE_PRECISION, ENGINE_PRECISIONS
from densepose_ros.inference.structures import DensePoseResult
from densepose_ros.runtime.base import BackendUnavailable, GraphBackend
from densepose_ros.runtime.split_pipeline import SplitPipeline

log = logging.getLogger(__name__)

PRECISION_ENV = "DENSEPOSE_TRT_PRECISION"


def resolve_precision(precision: str | None = None) -> str:
    """The engine precision to use: `precision`, else $DENSEPOSE_TRT_PRECISION, else the
    build default; ValueError for anything but fp32, fp16 or int8."""
    chosen = precision or os.environ.get(PRECISION_ENV) or DEFAULT_ENGINE_PRECISION
    if chosen not in ENGINE_PRECISIONS:
        source = "precision" if precision else f"${PRECISION_ENV}"
        raise ValueError(f"TensorRT {source} must be one of {', '.join(ENGINE_PRECISIONS)} "
                         f"(got '{chosen}')")
    return chosen


class TrtEngine:
    """One deserialised engine with its execution context; runs on torch CUDA tensors."""

    def __init__(self, path: Path, device: torch.device):
        import tensorrt as trt

        self.path = path
        self.device = device
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EngineError(f"{path}: TensorRT {trt.__version__} cannot load this engine "
                              "(corrupt, or built by another TensorRT version or GPU)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names
                       if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                  trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64}
        unknown = [n for n in names if self.engine.get_tensor_dtype(n) not in dtypes]
        if unknown:
            raise EngineError(f"{path}: unexpected tensor types of {', '.join(unknown)}")
        self.dtypes = {n: dtypes[self.engine.get_tensor_dtype(n)] for n in names}
        self.limits = {n: self.engine.get_tensor_profile_shape(n, 0) for n in self.inputs}

    def __call__(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        name = self.inputs[0]
        low, _, high = self.limits[name]
        shape = tuple(tensor.shape)
        if any(s < lo or s > hi for s, lo, hi in zip(shape, low, high, strict=True)):
            raise EngineError(
                f"{self.path.name}: input {name} of shape {shape} is outside the engine's "
                f"profile {tuple(low)}..{tuple(high)}; build the engine for this size "
                "(densepose build-engine --input-size WxH ...)")
        tensor = tensor.to(self.device, self.dtypes[name]).contiguous()
        self.context.set_input_shape(name, shape)
        self.context.set_tensor_address(name, int(tensor.data_ptr()))
        outputs = {}
        for out in self.outputs:
            buffer = torch.empty(tuple(self.context.get_tensor_shape(out)),
                                 dtype=self.dtypes[out], device=self.device)
            self.context.set_tensor_address(out, int(buffer.data_ptr()))
            outputs[out] = buffer
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineError(f"{self.path.name}: TensorRT execution failed")
        return {k: v.float() for k, v in outputs.items()}


def cuda_device(device: str) -> torch.device:
    """The CUDA device for ``device`` ('', 'auto', 'cuda', 'cuda:N'), or why there is none."""
    if not torch.cuda.is_available():
        raise BackendUnavailable("the tensorrt backend needs a CUDA device; none is available")
    resolved = torch.device("cuda" if device in ("", "auto") else device)
    if resolved.type != "cuda":
        raise BackendUnavailable(f"the tensorrt backend runs on CUDA, not '{device}'")
    return resolved


class TensorRTBackend(GraphBackend):
    name = "tensorrt"

    def __init__(self, bundle: OnnxBundle, engines: dict[str, Path], device: str = "cuda",
                 untrained: bool = False, source: str = ""):
        self.device = cuda_device(device)
        torch.cuda.set_device(self.device)
        self.bundle = bundle
        self.untrained = untrained
        self.engines = {g: TrtEngine(engines[g], self.device) for g in graph_names(bundle.config)}
        self.pipeline = SplitPipeline(bundle.config, self.run_graph, device=self.device)
        # A stream of our own: TensorRT warns about (and serialises on) the legacy default
        # stream; the glue and the engines are enqueued on this one, in order.
        self.stream = torch.cuda.Stream(self.device)
        precision = json.loads(engines[GRAPH_NAMES[0]].with_suffix(".json").read_text())
        self._description = (f"tensorrt/{torch.cuda.get_device_name(self.device)} "
                             f"{precision['precision']} {bundle.config.name} "
                             f"({source or bundle.directory.name})"
                             + (" UNTRAINED" if untrained else ""))

    def run_graph(self, graph: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.engines[graph](tensor)

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def infer(self, image_bgr: np.ndarray) -> DensePoseResult:
        with torch.cuda.stream(self.stream):
            return self.pipeline(image_bgr)

    @classmethod
    def from_bundle(cls, bundle: OnnxBundle, device: str = "cuda", untrained: bool = False,
                    source: str = "", precision: str | None = None) -> TensorRTBackend:
        precision = resolve_precision(precision)
        cuda_device(device)  # before any (minutes-long) engine build
        options = EngineBuildOptions(precision=precision)
        if precision == "int8":
            # Calibration needs images: use engines built by `densepose build-engine --int8`.
            engines = {}
            for graph in graph_names(bundle.config):
                path = engine_path(bundle, graph, precision, options)
                record = path.with_suffix(".json")
                why = "no engine" if not record.is_file() else mismatch(
                    json.loads(record.read_text()),
                    expected_info(bundle, graph, precision, options))
                if why:
                    raise EngineError(f"no usable INT8 {graph} engine ({why}); build it with "
                                      "`densepose build-engine EXPORT --int8 --calib IMAGES`")
                engines[graph] = path
        else:
            engines = ensure_engines(bundle, options)  # fp16/fp32: no calibration
        return cls(bundle, engines, device, untrained, source)

    @classmethod
    def from_weights(cls, path: Path, device: str = "cuda",
                     precision: str | None = None) -> TensorRTBackend:
        from densepose_ros.export.cache import cached_export

        resolve_precision(precision)  # a typo fails before an export is made
        path = Path(path)
        bundle = load_bundle(path) if is_bundle(path) or path.is_dir() else cached_export(path)
        return cls.from_bundle(bundle, device, source=path.name, precision=precision)

    @classmethod
    def untrained(cls, config_name: str | None, device: str = "cuda",
                  precision: str | None = None) -> TensorRTBackend:
        from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

        resolve_precision(precision)
        bundle = OnnxRuntimeBackend.untrained_bundle(config_name)
        return cls.from_bundle(bundle, device, untrained=True, source="untrained",
                               precision=precision)

    def release(self) -> None:
        torch.cuda.empty_cache()

    def close(self) -> None:
        self.engines = {}
        self.pipeline = None
        self.release()
