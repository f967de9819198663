"""ONNX Runtime backend: the exported graphs on the TensorRT, CUDA or CPU execution provider.

``weights`` may be an export folder (``densepose export``) or one of our ``.pth`` files; a
``.pth`` is exported once into the cache (``export_cache_dir()``, keyed by the file's hash)
and reused while the hash matches.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from densepose_ros.export.bundle import OnnxBundle, file_sha256, is_bundle, load_bundle
from densepose_ros.export.graphs import GRAPH_NAMES
from densepose_ros.export.pipeline import GraphBackend, SplitPipeline
from densepose_ros.runtime.base import BackendUnavailable

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"


def cache_dir() -> Path:
    """Where exports and engines are cached: $DENSEPOSE_CACHE_DIR, else
    $XDG_CACHE_HOME/densepose_ros, else ~/.cache/densepose_ros."""
    env = os.environ.get("DENSEPOSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "densepose_ros"


def export_cache_dir(model_sha256: str, config_name: str) -> Path:
    return cache_dir() / "onnx" / f"{config_name}_{model_sha256[:16]}"


def cached_export(weights: Path, progress=log.info) -> OnnxBundle:
    """The export of ``weights`` from the cache, exporting it first when absent or stale."""
    from densepose_ros.export.onnx_export import export_weights

    digest = file_sha256(weights)
    from densepose_ros.checkpoint import read_weights

    cfg, _, _ = read_weights(weights)
    target = export_cache_dir(digest, cfg.name)
    if is_bundle(target):
        try:
            bundle = load_bundle(target)
            if bundle.model_sha256 == digest:
                return bundle
            log.warning("cached export %s belongs to other weights; exporting again", target)
        except (ValueError, FileNotFoundError) as error:
            log.warning("cached export unusable (%s); exporting again", error)
    progress(f"exporting {weights.name} to ONNX (once; cached in {target})")
    return _export_into(target, lambda work: export_weights(weights, work, progress=progress))


def _export_into(target: Path, export) -> OnnxBundle:
    """Run ``export(folder)`` into a private folder, then move it to ``target``: concurrent
    processes never see a half-written export."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export_", dir=target.parent))
    try:
        export(work)
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return load_bundle(target)


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
        # Same thread count as PyTorch (set by the node/CLI), so both backends share the CPU
        # the same way and benchmarks compare like with like.
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sessions = {}
        for graph in GRAPH_NAMES:
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
        # The glue runs on the CPU: session outputs arrive there as numpy arrays.
        self.pipeline = SplitPipeline(bundle.config, self.run_graph, device="cpu")
        used = self.sessions[GRAPH_NAMES[0]].get_providers()[0]
        self._on_gpu = used != CPU_PROVIDER
        self._description = (f"onnxruntime/{used} {bundle.config.name} "
                             f"({source or bundle.directory.name})"
                             + (" UNTRAINED" if untrained else ""))

    def device_name(self) -> str:
        if not self._on_gpu:
            return "cpu"
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda"

    def run_graph(self, graph: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        feed = {self.input_names[graph]: np.ascontiguousarray(tensor.cpu().numpy())}
        arrays = self.sessions[graph].run(None, feed)
        return {name: torch.from_numpy(a) for name, a in
                zip(self.output_names[graph], arrays, strict=True)}

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
        from densepose_ros.export.onnx_export import export_model, state_sha256
        from densepose_ros.modeling import build_model
        from densepose_ros.modeling.config import LIGHT_CONFIG_NAME, get_config

        cfg = get_config(config_name or LIGHT_CONFIG_NAME)
        torch.manual_seed(0)
        model = build_model(cfg)
        digest = state_sha256(model)
        target = export_cache_dir(digest, cfg.name)
        if is_bundle(target):
            return load_bundle(target)
        return _export_into(target, lambda work: export_model(
            model, cfg, work, model_sha256=digest, progress=log.info))

    def close(self) -> None:
        self.sessions = {}
        self.pipeline = None

