"""Where the package finds its bundled files (models, configs, sample data).

One place for these lookups, because the package runs from three layouts:
a source checkout (``make``), a colcon install (``share/densepose_ros``) and a
plain ``pip install`` (no share directory; bundled models must be given by path
or ``DENSEPOSE_MODEL_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_NAME = "densepose_ros"
# File name of the bundled default model inside a models directory.
DEFAULT_MODEL_FILENAME = "densepose_default.pth"


def source_root() -> Path | None:
    """Repository root when running from a source checkout, else None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "package.xml").is_file() else None


def share_dir() -> Path | None:
    """``share/densepose_ros`` of the colcon/ament install that holds this package, if any."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / PACKAGE_NAME
        if (candidate / "package.xml").is_file():
            return candidate
    return None


def _search_dirs(sub: str) -> list[Path]:
    dirs = []
    for base in (source_root(), share_dir()):
        if base is not None and (base / sub).is_dir():
            dirs.append(base / sub)
    return dirs


def model_dirs() -> list[Path]:
    """Directories searched for bundled models, highest priority first."""
    dirs = []
    env = os.environ.get("DENSEPOSE_MODEL_DIR")
    if env:
        dirs.append(Path(env))
    return dirs + _search_dirs("models")


def default_model_path() -> Path | None:
    """Path of the bundled default model, or None when no default model is available."""
    for directory in model_dirs():
        candidate = directory / DEFAULT_MODEL_FILENAME
        if candidate.is_file():
            return candidate
    return None


def config_dir() -> Path | None:
    dirs = _search_dirs("config")
    return dirs[0] if dirs else None


def sample_data_dir() -> Path | None:
    """OpenCV sample data extracted by ``scripts/fetch_sample_data.sh`` (source checkouts)."""
    root = source_root()
    if root is not None and (root / ".cache" / "opencv_data").is_dir():
        return root / ".cache" / "opencv_data"
    return None


def cache_dir() -> Path:
    """Where downloaded models, exports and engines are cached: $DENSEPOSE_CACHE, else
    $XDG_CACHE_HOME/densepose_ros, else ~/.cache/densepose_ros. ($DENSEPOSE_CACHE_DIR, the
    earlier name, is still honoured.)"""
    for variable in ("DENSEPOSE_CACHE", "DENSEPOSE_CACHE_DIR"):
        value = os.environ.get(variable)
        if value:
            return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PACKAGE_NAME
