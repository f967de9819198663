"""The cache of exports and engines: where it is, and exporting a ``.pth`` into it once.

Backends and the CLI ask for ``cached_export(weights)``; the export is keyed by the weights'
sha256, written into a private folder and moved into place, so concurrent processes never
see half an export.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from densepose_ros import paths
from densepose_ros.export.bundle import OnnxBundle, file_sha256, is_bundle, load_bundle

log = logging.getLogger(__name__)


def export_cache_dir(model_sha256: str, config_name: str) -> Path:
    return paths.cache_dir() / "onnx" / f"{config_name}_{model_sha256[:16]}"


def find_cached_export(weights: Path, digest: str | None = None) -> OnnxBundle | None:
    """The cached export of ``weights`` if there is one, found by the file's hash alone:
    no torch (reading the weights' configuration would load it), so a process that only
    runs the graphs never imports it."""
    digest = digest or file_sha256(weights)
    root = paths.cache_dir() / "onnx"
    for folder in sorted(root.glob(f"*_{digest[:16]}")) if root.is_dir() else ():
        if not is_bundle(folder):
            continue
        try:
            bundle = load_bundle(folder)
        except (ValueError, FileNotFoundError):
            continue
        if bundle.model_sha256 == digest:
            return bundle
    return None


def cached_export(weights: Path, progress=log.info) -> OnnxBundle:
    """The export of ``weights`` from the cache, exporting it first when absent or stale."""
    digest = file_sha256(weights)
    found = find_cached_export(weights, digest)
    if found is not None:
        return found
    from densepose_ros.export.onnx_export import export_onnx
    from densepose_ros.inference.checkpoint import read_weights

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
    return export_atomically(target, lambda work: export_onnx(weights, work, progress=progress))


def export_atomically(target: Path, export) -> OnnxBundle:
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


def cached_untrained_export(config_name: str | None) -> OnnxBundle:
    """The export of the seeded untrained model of ``config_name`` (seed 0, as
    ``TorchBackend.untrained``), exported on first use."""
    import torch

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
    return export_atomically(target, lambda work: export_model(
        model, cfg, work, model_sha256=digest, progress=log.info))
