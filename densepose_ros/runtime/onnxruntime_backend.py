"""ONNX Runtime backend: the exported graphs on the TensorRT, CUDA or CPU execution provider.

``weights`` may be an export folder (``densepose export``) or one of our ``.pth`` files; a
``.pth`` is exported once into the cache (``densepose_ros.export.cache``, keyed by the
file's hash) and reused while the hash matches.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from densepose_ros.export.bundle import OnnxBundle, is_bundle, load_bundle
from densepose_ros.export.cache import cached_export, cached_untrained_export
from densepose_ros.export.names import GRAPH_NAMES, graph_names
from densepose_ros.runtime.base import BackendUnavailable, GraphBackend, cpu_threads
from densepose_ros.runtime.numpy_pipeline import NumpySplitPipeline

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for ``device`` ('cpu', 'cuda[:N]', 'auto'/''), best first."""
    if device == "cpu":
        return [CPU_PROVIDER]
    gpu = [p for p in (TENSORRT_PROVIDER, CUDA_PROVIDER) if p in available]
    if device.startswith("cuda") and not gpu:
        raise BackendUnavailable(
            f"device '{device}' requested but this onnxruntime has no CUDA/TensorRT provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu "
            "(requirements/gpu.txt) in place of onnxruntime")
    return gpu + [CPU_PROVIDER]


class OnnxRuntimeBackend(GraphBackend):
    name = "onnxruntime"

    def __init__(self, bundle: OnnxBundle, device: str = "auto", untrained: bool = False,
                 source: str = ""):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise BackendUnavailable("onnxruntime is not installed") from error
        self.bundle = bundle
        self.untrained = untrained
        self.providers = choose_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        # Same thread count as PyTorch (``cpu_threads``), so both backends share the CPU the
        # same way and benchmarks compare like with like.
        options.intra_op_num_threads = cpu_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: each graph has its own thread pool, and spinning
        # pools took the cores from the node's callbacks and the glue (measured in the node:
        # benchmarks/bench_node_e2e.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {}
        for graph in graph_names(bundle.config):
            path = bundle.path(graph)
            try:
                self.sessions[graph] = ort.InferenceSession(str(path), options,
                                                            providers=self.providers)
            except Exception as error:  # onnxruntime raises its own untyped errors
                raise ValueError(f"{path}: onnxruntime cannot load this graph ({error})") \
                    from error
        self.input_names = {g: s.get_inputs()[0].name for g, s in self.sessions.items()}
        self.output_names = {g: [o.name for o in s.get_outputs()]
                             for g, s in self.sessions.items()}
        # The glue runs on the CPU in numpy: session outputs arrive there as numpy arrays.
        self.pipeline = NumpySplitPipeline(bundle.config, self.run_graph)
        used = self.sessions[GRAPH_NAMES[0]].get_providers()[0]
        self._on_gpu = used != CPU_PROVIDER
        self._description = (f"onnxruntime/{used} {bundle.config.name} "
                             f"({source or bundle.directory.name})"
                             + (" UNTRAINED" if untrained else ""))

    def device_name(self) -> str:
        if not self._on_gpu:
            return "cpu"
        import torch  # only here, on a GPU machine, for the device's name

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda"

    def run_graph(self, graph: str, array: np.ndarray) -> dict[str, np.ndarray]:
        feed = {self.input_names[graph]: np.ascontiguousarray(array, dtype=np.float32)}
        arrays = self.sessions[graph].run(None, feed)
        return dict(zip(self.output_names[graph], arrays, strict=True))

    @classmethod
    def from_weights(cls, path: Path, device: str = "auto") -> OnnxRuntimeBackend:
        """From an export folder, or a ``.pth`` (exported once into the cache)."""
        path = Path(path)
        bundle = load_bundle(path) if is_bundle(path) or path.is_dir() else cached_export(path)
        return cls(bundle, device, source=path.name)

    @classmethod
    def untrained(cls, config_name: str | None, device: str = "auto") -> OnnxRuntimeBackend:
        """Untrained model (seed 0, as ``TorchBackend.untrained``), exported into the cache."""
        return cls(cls.untrained_bundle(config_name), device, untrained=True,
                   source="untrained")

    @staticmethod
    def untrained_bundle(config_name: str | None) -> OnnxBundle:
        """The cached export of the seeded untrained model (exported on first use)."""
        return cached_untrained_export(config_name)

    def close(self) -> None:
        self.sessions = {}
        self.pipeline = None

