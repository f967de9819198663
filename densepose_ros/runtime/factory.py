"""Backend selection: ``create_backend(name, weights, device)``.

``auto`` on a CUDA machine prefers tensorrt > onnxruntime (TensorRT/CUDA provider) > torch.
Elsewhere it follows the CPU measurements (``benchmarks/bench_backends.py``, README
"Performance"): OpenVINO in bf16 where the CPU computes bfloat16 natively (AMX or
AVX512-BF16: 1.5-4x eager PyTorch; ``OPENVINO_MEASUREMENT``), else onnxruntime
(``CPU_MEASUREMENT``; OpenVINO in fp32 measured no faster). Both run the ONNX export: a
``.pth`` is exported once (10-20 s for the light models, minutes for R-50/101) and cached by
the weights' sha256, so later starts load the graphs at once; the reason says which, with
the time the graphs took to be ready. If the export fails, eager PyTorch runs instead and the
reason says why.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

from densepose_ros import paths
from densepose_ros.runtime.base import Backend, BackendUnavailable

log = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
# The measurement the CPU choice rests on (benchmarks/bench_backends.py, light model,
# 640x480, median end-to-end); update it with the benchmark.
CPU_MEASUREMENT = ("onnxruntime measured faster than eager PyTorch in the node end to end "
                   "(default model, 640x480 at 30 Hz, 2-core CPU: 16.4 against 12.3 fps, "
                   "benchmarks/bench_node_e2e.py)")


OPENVINO_MEASUREMENT = ("OpenVINO bf16 measured fastest on CPUs with native bfloat16 (default "
                        "model at 640x480, 2-core Xeon with AMX: 32-38 ms against onnxruntime's "
                        "55-61 and PyTorch's 62; AP(GPS) 51.9 against 52.4, "
                        "benchmarks/bench_backends.py)")


def weights_file(weights: str | Path | None) -> Path | None:
    """The model file to load: ``weights`` if given (a file, an export folder, or a model-zoo
    name, downloaded and cached on first use), else the bundled default model, else None."""
    if weights:
        from densepose_ros.inference.model_zoo import resolve_weights

        return resolve_weights(weights)
    return paths.default_model_path()


# Device nodes of NVIDIA's driver (desktop/server, Jetson, WSL2): without any of them there
# is no CUDA device, and torch (780 MB resident) need not be imported to ask.
_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvhost-gpu", "/dev/nvgpu", "/dev/dxg")


def cuda_available() -> bool:
    """Whether a CUDA device is usable; torch is asked only where a GPU may be (it is loaded
    already, or the driver's device nodes exist)."""
    if "torch" not in sys.modules and not any(map(os.path.exists, _GPU_DEVICE_NODES)):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _cuda_device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def available_backends() -> dict[str, str]:
    """Backends usable here -> why (or why not, prefixed with 'unavailable: ')."""
    cuda = cuda_available()
    found = {"torch": "PyTorch is installed" + (" (CUDA)" if cuda else " (CPU only)")}
    if importlib.util.find_spec("onnxruntime") is None:
        found["onnxruntime"] = "unavailable: onnxruntime is not installed"
    else:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        found["onnxruntime"] = f"onnxruntime {onnxruntime.__version__} ({', '.join(providers)})"
    if importlib.util.find_spec("openvino") is None:
        found["openvino"] = "unavailable: openvino is not installed"
    else:
        # The version only: a Core() here would start OpenVINO's thread pools in every
        # process that chooses a backend, even one that then runs onnxruntime or torch.
        from importlib.metadata import PackageNotFoundError, version

        try:
            found["openvino"] = f"OpenVINO {version('openvino')}"
        except PackageNotFoundError:
            found["openvino"] = "OpenVINO (version unknown)"
    if importlib.util.find_spec("tensorrt") is None:
        found["tensorrt"] = "unavailable: the tensorrt package is not installed " \
                            "(requirements/gpu.txt)"
    elif not cuda:
        found["tensorrt"] = "unavailable: no CUDA device"
    else:
        found["tensorrt"] = f"TensorRT on {_cuda_device_name()}"
    return found


def _onnx_gpu_providers() -> bool:
    import onnxruntime

    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"}
                & set(onnxruntime.get_available_providers()))


# "0": auto never picks OpenVINO. For processes that fork after running inference (a
# training loader, a test runner): OpenVINO's thread pools (oneTBB) are not fork-safe, and such
# a process crashed later when it started children.
AUTO_OPENVINO_ENV = "DENSEPOSE_AUTO_OPENVINO"


def _openvino_bf16() -> bool:
    from densepose_ros.runtime.openvino_backend import cpu_has_bf16

    return os.environ.get(AUTO_OPENVINO_ENV, "1") != "0" and cpu_has_bf16()


def _export_at_hand(path: Path | None) -> bool:
    """Whether ONNX graphs for ``path`` exist without exporting (folder or cached)."""
    from densepose_ros.export.bundle import is_bundle

    if path is None:
        return False
    if path.is_dir():
        return is_bundle(path)
    from densepose_ros.export.cache import find_cached_export

    return path.is_file() and find_cached_export(path) is not None


def choose_auto(path: Path | None, device: str, available: dict[str, str]) -> tuple[str, str]:
    """(backend, why) for ``auto``; see the module docstring for the order."""
    usable = {k for k, v in available.items() if not v.startswith("unavailable")}
    gpu = device.startswith("cuda") or (device in ("", "auto") and cuda_available())
    is_export = path is not None and path.is_dir()
    has_export = is_export or _export_at_hand(path)
    if gpu:
        if "tensorrt" in usable and path is not None:
            return "tensorrt", f"auto: GPU with TensorRT ({available['tensorrt']})"
        if "onnxruntime" in usable and _onnx_gpu_providers() and has_export:
            return "onnxruntime", "auto: GPU, no TensorRT; onnxruntime has a GPU provider"
        if not is_export:
            return "torch", f"auto: GPU; TensorRT {available['tensorrt']}; eager PyTorch on " \
                            "CUDA"
    where = ("the weights are an ONNX export" if is_export else
             "an ONNX export of these weights is cached" if has_export else
             "these weights are exported to ONNX once now, then cached")
    if "openvino" in usable and (has_export or path is not None) and _openvino_bf16():
        return "openvino", f"auto: CPU with native bfloat16; {where}; {OPENVINO_MEASUREMENT}"
    if "onnxruntime" in usable and (has_export or path is not None):
        return "onnxruntime", f"auto: CPU; {where}; {CPU_MEASUREMENT}"
    why = ("onnxruntime is not installed" if "onnxruntime" not in usable
           else "an untrained model")
    return "torch", f"auto: CPU; {why}, so eager PyTorch"


def create_backend(
    name: str, weights: str | Path | None = None, device: str = "auto", *,
    allow_untrained: bool = False, untrained_config: str = "",
    tensorrt_precision: str | None = None, openvino_precision: str | None = None,
) -> tuple[Backend, str]:
    """A ready backend and the reason it was chosen. `tensorrt_precision` (fp32, fp16, int8;
    None: $DENSEPOSE_TRT_PRECISION or fp16) applies when the backend is tensorrt,
    `openvino_precision` (fp32, bf16, fp16; None: $DENSEPOSE_OV_PRECISION, else the device's
    fast one: bf16 on CPUs with native bfloat16, fp16 on GPUs, else fp32) when it is openvino.

    Raises ``FileNotFoundError`` when no model is available (no ``weights``, no bundled
    default, and ``allow_untrained`` false), ``ValueError`` for an unusable model file,
    ``ModelZooError`` when a model-zoo name cannot be downloaded or imported, and
    ``BackendUnavailable`` when the named backend cannot run here.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    if tensorrt_precision:
        from densepose_ros.runtime.tensorrt_backend import resolve_precision

        resolve_precision(tensorrt_precision)  # a typo is an error on every machine
    if openvino_precision:
        from densepose_ros.runtime.openvino_backend import resolve_precision as ov_precision

        ov_precision(openvino_precision)
    path = weights_file(weights)
    if path is None and not allow_untrained:
        raise FileNotFoundError(
            "no model: the 'weights' parameter is empty and no bundled default model is "
            f"installed (looked in: {', '.join(map(str, paths.model_dirs())) or 'nowhere'}). "
            "Give weights (see `densepose import-d2`) or set allow_untrained:=true for an "
            "untrained model (plumbing tests only)."
        )
    available = available_backends()
    automatic = name == "auto"
    if automatic:
        name, reason = choose_auto(path, device, available)
        log.info("backend %s", reason)
    else:
        reason = f"requested; {available[name]}"
        if available[name].startswith("unavailable"):
            raise BackendUnavailable(f"backend '{name}' {available[name]}")
    if name == "onnxruntime":
        from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend as chosen
    elif name == "tensorrt":
        from densepose_ros.runtime.tensorrt_backend import TensorRTBackend as chosen
    elif name == "openvino":
        from densepose_ros.runtime.openvino_backend import OpenVinoBackend as chosen
    else:
        from densepose_ros.runtime.torch_backend import TorchBackend as chosen
        if path is not None and path.is_dir():
            raise ValueError(f"{path} is a folder (an ONNX export?): the torch backend needs "
                             "a .pth weights file")

    extra = ({"precision": tensorrt_precision or None} if name == "tensorrt" else
             {"precision": openvino_precision or None} if name == "openvino" else {})
    if path is None:
        return (chosen.untrained(untrained_config or None, device, **extra),
                reason + "; UNTRAINED")
    if automatic and name in ("onnxruntime", "openvino") and not path.is_dir():
        return _exported_or_torch(chosen, path, device, reason, extra)
    return chosen.from_weights(path, device, **extra), reason


def _exported_or_torch(chosen: type, path: Path, device: str, reason: str, extra: dict
                       ) -> tuple[Backend, str]:
    """``auto``'s onnxruntime or OpenVINO on a ``.pth``: the cached export (made now if
    absent, timed), or eager PyTorch when the export or its loading fails."""
    import time

    started = time.monotonic()
    try:
        backend = chosen.from_weights(path, device, **extra)
    except (ValueError, FileNotFoundError):
        raise  # the weights file itself is unusable: the same error as any backend's
    except Exception as error:  # the exporter or onnxruntime: keep the node running
        log.warning("ONNX export of %s failed (%s); running eager PyTorch", path, error)
        from densepose_ros.runtime.torch_backend import TorchBackend

        return (TorchBackend.from_weights(path, device),
                f"auto: CPU; the ONNX export failed ({error}), so eager PyTorch")
    took = time.monotonic() - started
    return backend, f"{reason} (graphs ready in {took:.1f} s)"
