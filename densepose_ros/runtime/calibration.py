"""INT8 calibration inputs: the export run in onnxruntime (CPU) on calibration images,
recording what each graph receives. Lives beside the backends because it runs one;
``export.tensorrt_engine.ensure_engines`` takes it as ``collect_calibration`` and
``export.quantize.quantize_bundle`` takes its records for onnxruntime/OpenVINO INT8."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from densepose_ros.export.bundle import OnnxBundle
from densepose_ros.export.names import BACKBONE, DENSEPOSE_HEAD, graph_names
from densepose_ros.export.tensorrt_engine import (
    EngineBuildOptions,
    EngineError,
    calibration_images,
)
from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

log = logging.getLogger(__name__)


def collect_calibration_inputs(bundle: OnnxBundle, options: EngineBuildOptions,
                               progress: Callable[[str], None] = log.info
                               ) -> dict[str, list[np.ndarray]]:
    """``record_graph_inputs`` on the calibration images of a TensorRT engine build."""
    if options.calibration_source is None:
        raise EngineError("INT8 needs calibration images: give a folder or a bag")
    return record_graph_inputs(bundle, options.calibration_source, options.calibration_images,
                               progress)


def record_graph_inputs(bundle: OnnxBundle, source: Path, limit: int,
                        progress: Callable[[str], None] = log.info,
                        not_kept: tuple[str, ...] = ()) -> dict[str, list[np.ndarray]]:
    """Each graph's inputs on up to ``limit`` images of ``source`` (a folder or a bag),
    recorded from the export run in onnxruntime (CPU): padded images for the backbone,
    pooled features for the heads; the graphs in ``not_kept`` (left in float) are only
    counted. ``EngineError`` when the images give a graph nothing."""
    backend = OnnxRuntimeBackend(bundle, "cpu")
    recorded: dict[str, list[np.ndarray]] = {g: [] for g in graph_names(bundle.config)}
    calls = dict.fromkeys(recorded, 0)
    run_graph = backend.run_graph

    def recording(graph, array):
        calls[graph] += 1
        if graph not in not_kept:
            recorded[graph].append(np.array(array, dtype=np.float32))  # a copy
        return run_graph(graph, array)

    backend.pipeline.run_graph = recording
    count = 0
    for image in calibration_images(source, limit):
        backend.infer(image)
        count += 1
        if count % 10 == 0:
            progress(f"calibration: {count} images")
    if not calls[BACKBONE]:
        raise EngineError(f"{source}: no readable calibration images")
    for graph in graph_names(bundle.config):
        if graph != BACKBONE and not calls[graph]:
            raise EngineError(f"the calibration images gave no {graph} inputs (no proposals "
                              "or no detections); use images with people in them")
    progress(f"calibration: {count} images, {calls[DENSEPOSE_HEAD]} with persons")
    return recorded
