"""Official DensePose model-zoo weights by name: registry, download, verification, cache.

The registry (``densepose_ros/assets/model_zoo.json``) lists every model of detectron2's
DensePose model zoo (chart-based, IUV) with its download path, published metrics and the
first six hex digits of its sha256 (detectron2 names each file by them). ``resolve_weights``
turns a ``--weights`` argument into a file:

    resolve_weights("r50.pth")        -> Path("r50.pth")          (an existing file)
    resolve_weights("R_50_FPN_s1x")   -> <cache>/models/R_50_FPN_s1x.pth

A name not yet cached is downloaded (resumable, with a progress bar), its sha256 checked,
imported into this project's weight format (``checkpoint.import_detectron2``) and cached as
``cache_dir()/models/<name>.pth``; the downloaded ``.pkl`` is deleted afterwards. A failed
download, check or import leaves no file for that model in the cache (only a download
interrupted by Ctrl-C keeps its ``.download`` part, resumed next time). Processes resolving
the same name at once serialise on ``models/<name>.lock``; the later ones find the finished
file.

``$DENSEPOSE_MODEL_ZOO_URL`` replaces the registry's base URL (a mirror, a local server or a
``file://`` folder with the same layout). The six-digit hash catches corrupt and wrong
files; it is not a signature (the files are pickles: use only mirrors you trust).

Standard library + tqdm; torch and the model are imported only when a model is imported.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from densepose_ros.paths import cache_dir

REGISTRY_PATH = Path(__file__).resolve().parent.parent / "assets" / "model_zoo.json"
# Environment variable that replaces the registry's base URL (mirrors, tests).
URL_ENV = "DENSEPOSE_MODEL_ZOO_URL"
# Seconds a connect or a single read may take before the attempt counts as failed.
SOCKET_TIMEOUT_S = 10.0
# A connection that ends early is resumed (HTTP Range) at most this many times.
MAX_RETRIES = 3
CHUNK_BYTES = 1 << 20


class ModelZooError(RuntimeError):
    """A model-zoo file could not be downloaded, verified or imported (the message says
    which, and how to get the file by hand)."""


@dataclass(frozen=True)
class ZooEntry:
    """One model of the registry.

    name: short name shown in the model-zoo table, e.g. ``R_50_FPN_s1x`` (cache file name).
    detectron2_name: detectron2's config/row name, e.g. ``densepose_rcnn_R_50_FPN_s1x``.
    config: this project's configuration name for the model (``modeling.get_config``).
    path: download path relative to the base URL, e.g. ``densepose_rcnn_R_50_FPN_s1x/
        165712039/model_final_162be9.pkl``.
    sha256_prefix: first six hex digits of the file's sha256 (from its file name).
    model_id: detectron2's model id.
    box_ap, gps_ap, gpsm_ap: published box AP and DensePose AP (GPS, GPSm), in percent.
    gps_apex: the relaxed GPS AP (``dp. APex GPS``), where published (bootstrapping models).
    dataset: evaluation set of the metrics, ``DensePose-COCO`` or ``DensePose-Chimps``.
    group: table of the model zoo: legacy, fcn, deeplab, confidence, mask_confidence or
        bootstrapping.
    """

    name: str
    detectron2_name: str
    config: str
    path: str
    sha256_prefix: str
    model_id: int
    box_ap: float
    gps_ap: float
    gpsm_ap: float
    dataset: str
    group: str
    gps_apex: float | None = None

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["gps_apex"] is None:
            del data["gps_apex"]
        return data


@dataclass(frozen=True)
class ZooRegistry:
    """The registry file: where the files are, under which license, from which page."""

    base_url: str
    license: str
    source: str
    entries: tuple[ZooEntry, ...]

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]


@cache
def load_registry(path: str | os.PathLike | None = None) -> ZooRegistry:
    """The model-zoo registry (the bundled ``assets/model_zoo.json`` unless `path`)."""
    data = json.loads(Path(path or REGISTRY_PATH).read_text())
    entries = tuple(ZooEntry(**row) for row in data["models"])
    return ZooRegistry(base_url=data["base_url"], license=data["license"],
                       source=data["source"], entries=entries)


def find_entry(name: str) -> ZooEntry:
    """The entry named `name` (short or detectron2 name); ValueError with close matches."""
    registry = load_registry()
    for entry in registry.entries:
        if name in (entry.name, entry.detectron2_name):
            return entry
    candidates = registry.names() + [e.detectron2_name for e in registry.entries]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = (f"close matches: {', '.join(close)}" if close
            else f"the registry has {len(registry.entries)} models")
    raise ValueError(f"unknown model-zoo name '{name}' ({hint}); `densepose models` lists them")


def base_url() -> str:
    """``$DENSEPOSE_MODEL_ZOO_URL`` if set, else the registry's base URL."""
    return os.environ.get(URL_ENV) or load_registry().base_url


def download_url(entry: ZooEntry) -> str:
    return f"{base_url().rstrip('/')}/{entry.path}"


def models_dir() -> Path:
    """Folder of the cached, imported model-zoo weights: ``cache_dir()/models``."""
    return cache_dir() / "models"


def cached_path(name: str) -> Path | None:
    """The cached weights file of model `name`, or None when it is not cached."""
    path = models_dir() / f"{find_entry(name).name}.pth"
    return path if path.is_file() else None


def list_models() -> list[tuple[ZooEntry, Path | None]]:
    """Every registry entry with its cached weights file (None when not cached)."""
    return [(entry, cached_path(entry.name)) for entry in load_registry().entries]


def looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.endswith((".pth", ".pkl"))


def resolve_weights(spec: str | os.PathLike, progress: bool = True) -> Path:
    """A weights argument -> a weights file: an existing path is returned as given; a
    model-zoo name gives its cached file (downloaded, verified and imported when absent).

    Raises FileNotFoundError for a missing path or a string that is neither a file nor a
    model name, ModelZooError when the download, verification or import fails."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    text = os.fspath(spec).strip()
    if looks_like_path(text):
        raise FileNotFoundError(f"weights file not found: {text}")
    try:
        find_entry(text)
    except ValueError as error:
        raise FileNotFoundError(
            f"'{text}' is neither a weights file nor a model-zoo name: {error}") from None
    return fetch(text, progress=progress)


def fetch(name: str, progress: bool = True) -> Path:
    """The cached weights of model `name`; downloads, verifies and imports them first when
    they are not cached. Safe to call from several processes at once."""
    entry = find_entry(name)
    target = models_dir() / f"{entry.name}.pth"
    if target.is_file():
        return target
    _check_config_supported(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_suffix(".lock"), entry, progress):
        if target.is_file():  # another process finished it while we waited
            return target
        url = download_url(entry)
        partial = target.with_suffix(".download")
        pkl = target.with_suffix(".pkl")
        try:
            _download(url, partial, entry.name, progress)
            digest = _sha256(partial)
            if not digest.startswith(entry.sha256_prefix):
                raise ModelZooError(
                    f"{entry.name}: the file downloaded from {url} has sha256 {digest}, "
                    f"expected one starting with {entry.sha256_prefix} (a corrupt or wrong "
                    f"file; it was deleted, try again or use another mirror)")
            os.replace(partial, pkl)
            _import(entry, pkl, target, url, digest)
        except Exception:  # an interrupted (Ctrl-C) download stays, and resumes next time
            partial.unlink(missing_ok=True)
            raise
        finally:
            pkl.unlink(missing_ok=True)
    return target


def manual_hint(entry: ZooEntry) -> str:
    """How to install `entry` without network access on this machine."""
    official = f"{load_registry().base_url.rstrip('/')}/{entry.path}"
    return (f"To install it by hand: download {official} on a machine with "
            f"internet, then `densepose import-d2 {entry.file_name} --config {entry.config} "
            f"-o {entry.name}.pth` and pass that path as the weights")


def _check_config_supported(entry: ZooEntry) -> None:
    from densepose_ros.modeling.config import CONFIG_NAMES

    if entry.config not in CONFIG_NAMES:
        raise ModelZooError(
            f"model-zoo model {entry.name} needs configuration {entry.config}, which this "
            f"version does not support yet (supported: {', '.join(CONFIG_NAMES)})")


@contextmanager
def _locked(lock_path: Path, entry: ZooEntry, progress: bool) -> Iterator[None]:
    """Exclusive flock on `lock_path` (the file stays; removing it would race)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"waiting for another process that is fetching {entry.name} ...",
                      file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _Interrupted(Exception):
    """The body ended early or the connection failed mid-body: resume."""


def _download(url: str, dest: Path, label: str, progress: bool) -> None:
    """Download `url` to `dest`, resuming an existing partial `dest` and connections that end
    early (``Range: bytes=N-``; appended on 206, restarted on 200), up to MAX_RETRIES times."""
    from tqdm import tqdm

    retries = 0
    bar = None  # created once the server answers
    try:
        while True:
            have = dest.stat().st_size if dest.is_file() else 0
            headers = {"User-Agent": "densepose_ros-model-zoo"}
            if have:
                headers["Range"] = f"bytes={have}-"
            request = urllib.request.Request(url, headers=headers)
            try:
                response = urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT_S)
            except urllib.error.HTTPError as error:
                if error.code == 416 and have and retries < MAX_RETRIES:
                    dest.unlink(missing_ok=True)  # our part is no prefix of their file
                    retries += 1
                    continue
                raise _failed(url, label, f"the server answered HTTP {error.code} "
                                          f"{error.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                if bar is None or retries >= MAX_RETRIES:  # never connected, or gave up
                    raise _failed(url, label, f"cannot reach the server ({reason})") from None
                retries += 1
                time.sleep(0.5 * retries)
                continue
            if bar is None:
                bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=label, disable=not progress, file=sys.stderr)
            try:
                with response:
                    _receive(response, dest, have, bar)
                return
            except _Interrupted as error:
                retries += 1
                if retries > MAX_RETRIES:
                    raise _failed(url, label, f"the connection ended early {retries} times "
                                              f"({error})") from None
                time.sleep(0.5 * retries)
    finally:
        if bar is not None:
            bar.close()


def _receive(response: Any, dest: Path, have: int, bar: Any) -> None:
    """Write one response's body to `dest` (appending after `have` bytes on a 206)."""
    status = getattr(response, "status", None) or 200
    length_text = response.headers.get("Content-Length")
    length = int(length_text) if length_text and length_text.isdigit() else None
    append = False
    if have and status == 206:
        match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*",
                             response.headers.get("Content-Range", ""))
        append = bool(match) and int(match[1]) == have
        if not append:  # a range we did not ask for: start again from the first byte
            dest.unlink(missing_ok=True)
            raise _Interrupted(f"unexpected Content-Range {response.headers.get('Content-Range')}")
    start = have if append else 0
    bar.reset(total=None if length is None else start + length)
    bar.update(start)
    received = 0
    # read1 returns what has arrived, so a failure mid-body loses nothing already received
    read = getattr(response, "read1", response.read)
    try:
        with open(dest, "ab" if append else "wb") as f:
            while chunk := read(CHUNK_BYTES):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as error:
        # OSError covers socket timeouts and resets, HTTPException covers IncompleteRead
        raise _Interrupted(f"{type(error).__name__}: {error}") from None
    if length is not None and received < length:
        raise _Interrupted(f"got {received} of {length} bytes")


def _failed(url: str, label: str, reason: str) -> ModelZooError:
    return ModelZooError(f"could not download model-zoo model {label} from {url}: {reason}; "
                         f"nothing was cached. {manual_hint(find_entry(label))}")


def _import(entry: ZooEntry, pkl: Path, target: Path, url: str, digest: str) -> None:
    """Import the verified detectron2 file `pkl` into our format at `target` (atomic)."""
    from densepose_ros.inference.checkpoint import import_detectron2, save_weights
    from densepose_ros.modeling import build_model, get_config

    try:
        cfg = get_config(entry.config)
        state = import_detectron2(pkl, entry.config)
        model = build_model(cfg)
        model.load_state_dict(state, strict=True)
    except Exception as error:  # whatever a downloaded pickle makes the import raise
        detail = str(error)
        detail = detail if len(detail) <= 600 else detail[:600] + " ..."
        raise ModelZooError(f"model-zoo model {entry.name} ({url}) downloaded and verified "
                            f"but could not be imported as configuration {entry.config}: "
                            f"{detail}") from error
    metadata = {
        "imported_from": "detectron2",
        "source_file": entry.file_name,
        "model_zoo_name": entry.name,
        "detectron2_name": entry.detectron2_name,
        "model_id": entry.model_id,
        "url": url,
        "sha256": digest,
        "license": load_registry().license,
    }
    try:
        save_weights(target, model, cfg, metadata=metadata)  # temp file + os.replace
    except OSError as error:
        raise ModelZooError(f"model-zoo model {entry.name}: could not write {target} "
                            f"({error})") from error
