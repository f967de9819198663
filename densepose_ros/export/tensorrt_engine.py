"""TensorRT engines for an ONNX export: build (FP32/FP16/INT8), cache, load with checks.

One engine per graph of the export (backbone, box head, DensePose head), built with the
TensorRT Python API from the ONNX files. Engines are cached under a file name made of the
configuration, the graph, the export's hash (which follows from the weights), the TensorRT
version, the GPU name and the precision, next to a JSON sidecar recording the same facts plus
the optimisation profiles. ``ensure_engines`` loads a cached engine only when every recorded
fact matches the current export, TensorRT and GPU; anything else (no engine, an engine from
another TensorRT/GPU/export, a corrupt file) is rebuilt, with the reason logged, never used.

INT8 calibrates on real images: a folder of pictures or a rosbag2 with image topics. The
images go through the same preprocessing as at run time; the heads are calibrated on the
pooled features of the detections those images produce (collected by running the export in
onnxruntime on the CPU), so every graph sees realistic activations.

Needs ``tensorrt`` and a CUDA device; device buffers are torch CUDA tensors (no pycuda).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from densepose_ros.export.bundle import OnnxBundle
from densepose_ros.export.names import BACKBONE, BOX_HEAD, graph_names
from densepose_ros.inference.precision import (
    DEFAULT_ENGINE_PRECISION,
    ENGINE_PRECISIONS,
    check_precision,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class EngineError(RuntimeError):
    """An engine cannot be built or used; the message says why."""


@dataclass
class EngineBuildOptions:
    """How engines are built. Sizes are padded network inputs (height, width), multiples of
    32; the backbone's optimisation profile spans them (opt = the export's example size)."""

    precision: str = DEFAULT_ENGINE_PRECISION
    workspace_gib: float = 4.0
    # Network input sizes the engine must accept: a 640x480 camera at the light model's
    # resize gives 480x640; the R-50 models' resize of 4:3 frames gives 800x1088.
    input_sizes: list[tuple[int, int]] = field(default_factory=list)
    # Most person boxes per frame the DensePose head engine takes (the box head takes the
    # configuration's proposal count).
    max_persons: int = 100
    # INT8 only: a folder of images or a rosbag2 with sensor_msgs/Image or CompressedImage.
    calibration_source: Path | None = None
    calibration_images: int = 100
    cache_dir: Path | None = None


@dataclass
class EngineInfo:
    """What an engine was built from and for (the sidecar JSON)."""

    graph: str
    config: str
    onnx_sha256: str
    export_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profiles: dict[str, list[list[int]]]  # input name -> [min, opt, max] shapes
    built_at: str = ""
    build_seconds: float = 0.0


def _tensorrt():
    try:
        import tensorrt as trt
    except ImportError as error:
        raise EngineError("TensorRT is not installed (pip install -r requirements/gpu.txt on "
                          "a machine with an NVIDIA GPU)") from error
    return trt


def _gpu() -> tuple[str, str]:
    import torch

    if not torch.cuda.is_available():
        raise EngineError("TensorRT engines need a CUDA device; none is available")
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def profiles_for(bundle: OnnxBundle, graph: str, options: EngineBuildOptions
                 ) -> dict[str, list[list[int]]]:
    """Optimisation profile (min, opt, max shapes) of the graph's input."""
    cfg = bundle.config
    spec = bundle.graphs[graph].inputs[0]
    if graph == BACKBONE:
        sizes = list(options.input_sizes)
        if not sizes:
            # Every frame the configuration's resize can produce, either orientation: the
            # short side at min_size, the long one up to max_size (and down to half the
            # short side, for frames run without resize).
            div = cfg.input.size_divisibility
            short = -(-cfg.input.min_size // (2 * div)) * div
            long = -(-cfg.input.max_size // div) * div
            sizes = [(short, short), (long, long)]
        opt = bundle.input_size if bundle.input_size in sizes or not options.input_sizes \
            else sizes[0]
        low = (min(h for h, _ in sizes), min(w for _, w in sizes))
        high = (max(h for h, _ in sizes), max(w for _, w in sizes))
        return {spec.name: [[1, 3, *low], [1, 3, *opt], [1, 3, *high]]}
    if graph == BOX_HEAD:
        most = cfg.rpn.post_nms_topk
        side = cfg.box_head.pooler_resolution
        channels = cfg.backbone.fpn_channels
    else:
        most = max(options.max_persons, cfg.box_head.max_detections)
        dp = cfg.densepose
        side = dp.pooler_resolution
        channels = dp.decoder_out_channels if dp.decoder_on else cfg.backbone.fpn_channels
    tail = [channels, side, side]
    return {spec.name: [[1, *tail], [max(1, most // 2), *tail], [most, *tail]]}


def engine_path(bundle: OnnxBundle, graph: str, precision: str, options: EngineBuildOptions
                ) -> Path:
    """Cache path of one engine: config, graph, export hash, TensorRT version, GPU, precision
    and a short hash of the profiles (different input sizes get different engines)."""
    from densepose_ros.paths import cache_dir

    trt = _tensorrt()
    gpu_name, _ = _gpu()
    profiles = json.dumps(profiles_for(bundle, graph, options), sort_keys=True)
    profile_tag = hashlib.sha256(profiles.encode()).hexdigest()[:8]
    name = (f"{bundle.config.name}_{graph}_{bundle.graphs_sha256[:12]}_trt{trt.__version__}_"
            f"{_slug(gpu_name)}_{precision}_{profile_tag}.engine")
    return (options.cache_dir or cache_dir() / "engines") / name


def expected_info(bundle: OnnxBundle, graph: str, precision: str,
                  options: EngineBuildOptions) -> EngineInfo:
    trt = _tensorrt()
    gpu_name, capability = _gpu()
    return EngineInfo(graph, bundle.config.name, bundle.graphs[graph].sha256,
                      bundle.graphs_sha256, trt.__version__, gpu_name, capability, precision,
                      profiles_for(bundle, graph, options))


def mismatch(recorded: dict, expected: EngineInfo) -> str | None:
    """Why a cached engine does not fit (None when it does)."""
    for key in ("onnx_sha256", "export_sha256", "tensorrt_version", "gpu_name",
                "compute_capability", "precision", "profiles"):
        if recorded.get(key) != getattr(expected, key):
            return f"{key} is {recorded.get(key)!r}, needed {getattr(expected, key)!r}"
    return None


# (bundle, options, progress) -> each graph's recorded inputs; see
# densepose_ros.runtime.calibration (it runs the export, which export/ itself must not).
CalibrationCollector = Callable[
    [OnnxBundle, EngineBuildOptions, Callable[[str], None]], dict[str, list[np.ndarray]]]


def ensure_engines(bundle: OnnxBundle, options: EngineBuildOptions | None = None,
                   progress: Callable[[str], None] = log.info, force: bool = False,
                   collect_calibration: CalibrationCollector | None = None,
                   ) -> dict[str, Path]:
    """Engine paths of all graphs, building any that is missing, stale or mismatched.
    INT8 builds take their calibration inputs from ``collect_calibration``."""
    options = options or EngineBuildOptions()
    try:
        check_precision(options.precision, ENGINE_PRECISIONS, "TensorRT engine")
    except ValueError as error:
        raise EngineError(str(error)) from error
    paths = {}
    calibration: dict[str, list[np.ndarray]] | None = None
    for graph in graph_names(bundle.config):
        path = engine_path(bundle, graph, options.precision, options)
        expected = expected_info(bundle, graph, options.precision, options)
        reason = "forced" if force else _why_rebuild(path, expected)
        if reason is None:
            progress(f"{graph}: cached engine {path}")
        else:
            progress(f"{graph}: building {options.precision} engine ({reason}) ...")
            if options.precision == "int8" and calibration is None:
                if collect_calibration is None:
                    raise EngineError("an INT8 build needs a calibration collector "
                                      "(densepose_ros.runtime.calibration)")
                calibration = collect_calibration(bundle, options, progress)
            build_engine(bundle, graph, path, expected, options,
                         calibration[graph] if calibration else None, progress)
        paths[graph] = path
    return paths


def _parser_error(error) -> str:
    describe = getattr(error, "desc", None)  # ParserError.desc() in TensorRT 10
    return describe() if callable(describe) else str(error)


def _why_rebuild(path: Path, expected: EngineInfo) -> str | None:
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        return "no cached engine"
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"unreadable engine record ({error})"
    return mismatch(recorded, expected)


def build_engine(bundle: OnnxBundle, graph: str, path: Path, info: EngineInfo,
                 options: EngineBuildOptions, calibration: list[np.ndarray] | None,
                 progress: Callable[[str], None] = log.info) -> Path:
    """Parse the graph's ONNX file, build with the options, write engine + sidecar."""
    trt = _tensorrt()
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    onnx_path = bundle.path(graph)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(_parser_error(parser.get_error(i))
                           for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT cannot parse this graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                 int(options.workspace_gib * (1 << 30)))
    if info.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in info.profiles.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    if info.precision == "int8":
        if not calibration:
            raise EngineError("INT8 needs calibration images (--calib DIR_OR_BAG)")
        if not hasattr(trt, "IInt8EntropyCalibrator2"):
            raise EngineError(f"TensorRT {trt.__version__} has no INT8 calibrator API; use "
                              "fp16, or TensorRT 10.x")
        config.set_flag(trt.BuilderFlag.INT8)
        input_name, (_, opt, _) = next(iter(info.profiles.items()))
        calibrator = _make_calibrator(trt, input_name, fit_calibration(calibration, opt),
                                      path.with_suffix(".calib"))
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build the {graph} engine (see its log above)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".engine.tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(path)
    info.build_seconds = time.perf_counter() - start
    info.built_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.with_suffix(".json").write_text(json.dumps(asdict(info), indent=1))
    progress(f"{graph}: wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
             f"{info.build_seconds:.0f} s)")
    return path


def fit_calibration(arrays: list[np.ndarray], shape: list[int]) -> list[np.ndarray]:
    """Calibration runs at the profile's opt shape: images are zero-padded or cropped to it
    (as padding does at run time); pooled RoIs are pooled together and cut into batches of
    its RoI count."""
    if shape[0] == 1 and len(shape) == 4 and shape[1] == 3:
        fitted = []
        for array in arrays:
            out = np.zeros(shape, np.float32)
            h, w = min(shape[2], array.shape[2]), min(shape[3], array.shape[3])
            out[:, :, :h, :w] = array[:, :, :h, :w]
            fitted.append(out)
        return fitted
    rows = np.concatenate(arrays).astype(np.float32)
    per_batch = shape[0]
    if len(rows) < per_batch:
        rows = np.concatenate([rows] * (-(-per_batch // len(rows))))
    return [rows[i:i + per_batch] for i in range(0, len(rows) - per_batch + 1, per_batch)]


def _make_calibrator(trt, input_name: str, batches: list[np.ndarray], cache_path: Path):
    """An entropy calibrator feeding ``batches`` (one array per step) from CUDA tensors."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.current = None  # keeps the device buffer alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return 1  # shapes are explicit; each batch carries its own leading dimension

        def get_batch(self, names):
            if self.index >= len(batches):
                return None
            self.current = torch.from_numpy(batches[self.index]).cuda().contiguous()
            self.index += 1
            return [int(self.current.data_ptr()) for _ in names]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache):
            cache_path.write_bytes(bytes(cache))

    log.debug("calibrating input %s on %d batches", input_name, len(batches))
    return Calibrator()


def calibration_images(source: Path, limit: int) -> Iterator[np.ndarray]:
    """BGR images from a folder (sorted) or a rosbag2 (Image/CompressedImage topics)."""
    import cv2

    source = Path(source)
    if source.is_dir() and not (source / "metadata.yaml").is_file():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EngineError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in files[:limit]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                yield image
        return
    if not source.exists():
        raise EngineError(f"calibration source not found: {source}")
    yield from _bag_images(source, limit)


def _bag_images(source: Path, limit: int) -> Iterator[np.ndarray]:
    from densepose_ros.io import bag_io
    from densepose_ros.io.image_codec import decode_compressed, decode_image

    store = bag_io.typestore()
    count = 0
    for message in bag_io.read_bag(source):
        if message.msgtype == "sensor_msgs/msg/Image":
            msg = store.deserialize_cdr(message.data, message.msgtype)
            image = decode_image(msg.encoding, msg.height, msg.width, msg.step,
                                 bool(msg.is_bigendian), msg.data)
        elif message.msgtype == "sensor_msgs/msg/CompressedImage":
            msg = store.deserialize_cdr(message.data, message.msgtype)
            image = decode_compressed(msg.format, msg.data)
        else:
            continue
        yield image
        count += 1
        if count >= limit:
            return
    if count == 0:
        raise EngineError(f"{source}: no sensor_msgs Image/CompressedImage messages")
