"""An exported model on disk: three ONNX graphs and ``manifest.json`` describing them.

The manifest carries the model configuration (the glue needs its thresholds, anchors and
pooler settings), the hash of the weights the graphs came from, each graph's file hash and
its input/output names, shapes and dtypes. ``load_bundle`` checks all of it, so a missing,
truncated or edited file is an error that names the file rather than a failure deep inside a
runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from densepose_ros.export.names import graph_names
from densepose_ros.modeling.config import ModelConfig

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "densepose_ros-onnx-bundle"
BUNDLE_VERSION = 1


@dataclass
class TensorSpec:
    """One graph input or output: shape entries are ints or names of dynamic axes."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"


@dataclass
class GraphSpec:
    """One ONNX file of the bundle."""

    file: str
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class OnnxBundle:
    """A loaded, checked export (``load_bundle``)."""

    directory: Path
    config: ModelConfig
    # sha256 of the weights file (or of the state dict for in-memory models) exported
    model_sha256: str
    opset: int
    # (height, width) of the padded network input used as the example; the TensorRT builder's
    # default optimisation point
    input_size: tuple[int, int]
    graphs: dict[str, GraphSpec]
    torch_version: str = ""
    extra: dict = field(default_factory=dict)

    def path(self, graph: str) -> Path:
        return self.directory / self.graphs[graph].file

    @property
    def graphs_sha256(self) -> str:
        """One hash over all graph files: identifies exactly what an engine was built from."""
        digest = hashlib.sha256()
        for name in graph_names(self.config):
            digest.update(self.graphs[name].sha256.encode())
        return digest.hexdigest()

    def write_manifest(self) -> Path:
        data = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "config": self.config.to_dict(),
            "model_sha256": self.model_sha256,
            "opset": self.opset,
            "input_size": list(self.input_size),
            "torch_version": self.torch_version,
            "graphs": {k: dataclasses.asdict(v) for k, v in self.graphs.items()},
            "extra": self.extra,
        }
        path = self.directory / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
        return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is an export folder (or its manifest)."""
    path = Path(path)
    return (path / MANIFEST_NAME).is_file() or (path.name == MANIFEST_NAME and path.is_file())


def load_bundle(path: str | Path, verify_hashes: bool = True) -> OnnxBundle:
    """Read and check an export folder (or its ``manifest.json``).

    Raises ``FileNotFoundError`` for a missing folder/manifest/graph and ``ValueError`` for a
    manifest that is not ours, is corrupt, or whose graph files do not match their hashes.
    """
    path = Path(path).expanduser()
    directory = path.parent if path.name == MANIFEST_NAME else path
    manifest = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise FileNotFoundError(f"ONNX export folder not found: {directory}")
    if not manifest.is_file():
        raise FileNotFoundError(f"{directory}: no {MANIFEST_NAME}; not a `densepose export` "
                                "folder")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{manifest}: unreadable manifest ({error})") from error
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{manifest}: not a densepose_ros ONNX export manifest")
    if data.get("version") != BUNDLE_VERSION:
        raise ValueError(f"{manifest}: unsupported export version {data.get('version')} "
                         f"(this code reads {BUNDLE_VERSION}); export again")
    try:
        config = ModelConfig.from_dict(data["config"])
        graphs = {
            name: GraphSpec(
                file=spec["file"], sha256=spec["sha256"],
                inputs=[TensorSpec(**t) for t in spec["inputs"]],
                outputs=[TensorSpec(**t) for t in spec["outputs"]],
            )
            for name, spec in data["graphs"].items()
        }
        bundle = OnnxBundle(
            directory=directory, config=config, model_sha256=str(data["model_sha256"]),
            opset=int(data["opset"]), input_size=tuple(int(v) for v in data["input_size"]),
            graphs=graphs, torch_version=str(data.get("torch_version", "")),
            extra=dict(data.get("extra") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{manifest}: invalid manifest ({error!r})") from error
    missing = [g for g in graph_names(config) if g not in graphs]
    if missing:
        raise ValueError(f"{manifest}: graphs missing from the manifest: {', '.join(missing)}")
    for name in graph_names(config):
        graph_path = bundle.path(name)
        if not graph_path.is_file():
            raise FileNotFoundError(f"{directory}: graph file {graph_path.name} is missing")
        if verify_hashes and file_sha256(graph_path) != graphs[name].sha256:
            raise ValueError(f"{graph_path}: file does not match the hash in {MANIFEST_NAME} "
                             "(modified or truncated); export again")
    return bundle
