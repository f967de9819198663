"""Numeric precisions: one vocabulary for the whole package. Each runtime supports a subset:
the eager PyTorch predictor runs float32 or bfloat16; TensorRT engines are built in float32,
float16 or int8; OpenVINO compiles the ONNX graphs for float32, bfloat16 (CPUs) or float16
(GPUs). INT8 on onnxruntime and OpenVINO is a property of the graphs (``densepose export
--int8``), not a runtime setting."""

from __future__ import annotations

FP32, FP16, BF16, INT8 = "fp32", "fp16", "bf16", "int8"
# DensePosePredictor (eager PyTorch): bf16 is faster on AVX512-BF16/AMX CPUs and GPUs.
PREDICTOR_PRECISIONS = (FP32, BF16)
# TensorRT engines; int8 needs calibration images.
ENGINE_PRECISIONS = (FP32, FP16, INT8)
# What TensorRT engines are built in unless told otherwise.
DEFAULT_ENGINE_PRECISION = FP16
# OpenVINO's inference precision. Unless told otherwise: bf16 on CPUs that compute it
# natively (AMX, AVX512-BF16; 1.5-4x faster than fp32, AP(GPS) -0.2 measured), fp16 on GPUs,
# else fp32 (openvino_backend.default_precision).
OPENVINO_PRECISIONS = (FP32, BF16, FP16)


def check_precision(value: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``allowed``, else ValueError naming ``what`` it is for."""
    if value not in allowed:
        raise ValueError(f"{what} precision must be one of {', '.join(allowed)}, "
                         f"got {value!r}")
    return value
