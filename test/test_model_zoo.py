"""Model-zoo weights by name: registry, download, resume, verification, import, cache, CLI.

Everything runs for real against a local HTTP server (``zoo_server.py``, a thread on
127.0.0.1) that ``$DENSEPOSE_MODEL_ZOO_URL`` points at, with ``$DENSEPOSE_CACHE`` in a
temporary folder. The file served for ``R_50_FPN_s1x`` is the parity fixture's stand-in
checkpoint (``random_weights.py``, as in ``model_fixtures.py``), about 256 MB, followed by a
few bytes that give it the sha256 prefix of the real model-zoo file (``162be9``): pickle
stops reading at its STOP opcode, so the suffix does not change what loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_fixtures import PARITY_DIR, _random_weights_module
from zoo_server import ZooServer

from densepose_ros.cli import main
from densepose_ros.inference import model_zoo
from densepose_ros.inference.checkpoint import read_weights
from densepose_ros.inference.model_zoo import (
    ModelZooError,
    cached_path,
    find_entry,
    load_registry,
    resolve_weights,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME = "R_50_FPN_s1x"
# Appended to the stand-in pickle, this suffix makes its sha256 start with 162be9. Found once
# with find_suffix (numpy 1.x/2.x and torch as in requirements/, pickle protocol 4).
SUFFIX_HEX = "84debf0100000000"
EXPECTED_SHA256 = "162be943c7a206e3452dfcc7f2f547a0a1b4e19e7c0c92edb0a7721b2b58648b"
# A tiny pickle of a checkpoint without keys for R_101_FPN_s1x (file hash prefix c6ab63):
# it verifies but cannot be imported. Plain Python objects, so its bytes never change.
EMPTY_CHECKPOINT_HEX = (
    "80049530000000000000007d94288c056d6f64656c947d948c0a5f5f617574686f725f5f948c11746573"
    "745f6d6f64656c5f7a6f6f2e707994752e" + "17a1140000000000")
# Where the served tree starts below the server's root (the base URL has a path too).
PREFIX = "/mirror/densepose"


def find_suffix(data_hash, prefix_hex: str) -> bytes:
    """8 bytes that, appended to the data hashed in `data_hash` (a hashlib.sha256 object),
    make its sha256 start with `prefix_hex` (6 hex digits: about
    2**24 tries, typically 10-60 s on one core)."""
    target = bytes.fromhex(prefix_hex)
    for counter in range(1 << 40):
        suffix = counter.to_bytes(8, "little")
        candidate = data_hash.copy()
        candidate.update(suffix)
        if candidate.digest()[:len(target)] == target:
            return suffix
    raise AssertionError("unreachable")


def test_find_suffix_gives_the_asked_prefix():
    """The fallback of `zoo_file`, on a short prefix (65536 tries at most)."""
    data = b"any pickle"
    suffix = find_suffix(hashlib.sha256(data), "beef")
    assert hashlib.sha256(data + suffix).hexdigest().startswith("beef")


@pytest.fixture(scope="module")
def zoo_file() -> bytes:
    """The bytes served as the model-zoo file of R_50_FPN_s1x (sha256 starts with 162be9)."""
    entry = find_entry(NAME)
    rows = json.loads((PARITY_DIR / "keys.json").read_text())[entry.detectron2_name]
    data = pickle.dumps({"model": _random_weights_module().make(rows),
                         "__author__": "random_weights.py", "matching_heuristics": False})
    data_hash = hashlib.sha256(data)
    suffix = bytes.fromhex(SUFFIX_HEX)
    candidate = data_hash.copy()
    candidate.update(suffix)
    if candidate.hexdigest() != EXPECTED_SHA256:
        # Another numpy/torch pickles the arrays differently: search again (about a minute).
        suffix = find_suffix(data_hash, entry.sha256_prefix)
    return data + suffix


@pytest.fixture(scope="module")
def zoo_sha256(zoo_file) -> str:
    digest = hashlib.sha256(zoo_file).hexdigest()
    assert digest.startswith("162be9")
    return digest


@pytest.fixture(scope="module")
def server():
    zoo = ZooServer().start()
    yield zoo
    zoo.stop()


@pytest.fixture
def zoo(server, zoo_file, tmp_path, monkeypatch):
    """The server serving the R_50_FPN_s1x file, with this process's env pointed at it and a
    fresh cache folder."""
    server.reset()
    server.files[served_path(NAME)] = zoo_file
    monkeypatch.setenv("DENSEPOSE_MODEL_ZOO_URL", server.url + PREFIX)
    monkeypatch.setenv("DENSEPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DENSEPOSE_CACHE_DIR", raising=False)
    return server


def served_path(name: str) -> str:
    return f"{PREFIX}/{find_entry(name).path}"


def models_dir() -> Path:
    return Path(os.environ["DENSEPOSE_CACHE"]) / "models"


def leftovers(name: str) -> list[str]:
    """Files of model `name` in the cache apart from its lock."""
    folder = models_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(name) and p.suffix != ".lock")


# The registry --------------------------------------------------------------------------------

def test_registry_lists_every_model_of_the_zoo_tables():
    registry = load_registry()
    assert len(registry.entries) == 27
    assert len(set(registry.names())) == 27
    groups = {}
    for entry in registry.entries:
        groups[entry.group] = groups.get(entry.group, 0) + 1
        assert entry.path.endswith(f"/{entry.model_id}/model_final_{entry.sha256_prefix}.pkl")
        assert entry.detectron2_name in entry.path and entry.config == entry.name
        assert len(entry.sha256_prefix) == 6 and int(entry.sha256_prefix, 16) >= 0
        assert (entry.gps_apex is not None) == (entry.group == "bootstrapping")
        assert entry.dataset == ("DensePose-Chimps" if entry.group == "bootstrapping"
                                 else "DensePose-COCO")
    assert groups == {"legacy": 2, "fcn": 2, "deeplab": 2, "confidence": 8,
                      "mask_confidence": 8, "bootstrapping": 5}
    entry = find_entry("densepose_rcnn_R_50_FPN_s1x")
    assert entry == find_entry(NAME)
    assert (entry.path, entry.sha256_prefix, entry.model_id) == (
        "densepose_rcnn_R_50_FPN_s1x/165712039/model_final_162be9.pkl", "162be9", 165712039)
    assert (entry.box_ap, entry.gps_ap, entry.gpsm_ap) == (61.2, 63.7, 65.3)
    assert registry.base_url == "https://dl.fbaipublicfiles.com/densepose/"
    assert registry.license.startswith("CC BY-SA 3.0")


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="R_50_FPN_s1x") as info:
        find_entry("R_50_FPN_s1")
    assert "densepose models" in str(info.value)


def test_resolve_weights_keeps_an_existing_path_and_rejects_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("DENSEPOSE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"x")
    assert resolve_weights(weights) == weights
    assert resolve_weights(str(weights)) == weights
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_weights(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_weights("missing.pkl")
    with pytest.raises(FileNotFoundError, match="neither") as info:
        resolve_weights("R_50_FPN_s1")
    assert "densepose models" in str(info.value) and "R_50_FPN_s1x" in str(info.value)
    assert not (tmp_path / "cache").exists()


# Download, verification, import, cache ----------------------------------------------------------

def test_download_verify_import_then_cached(zoo, zoo_sha256):
    start = time.monotonic()
    path = resolve_weights(NAME, progress=False)
    first = time.monotonic() - start
    assert path == models_dir() / f"{NAME}.pth"
    requests = zoo.requests_for(served_path(NAME))
    assert len(requests) == 1 and requests[0].complete and requests[0].range is None
    assert leftovers(NAME) == [f"{NAME}.pth"]

    cfg, state, metadata = read_weights(path)
    assert cfg.name == NAME and state
    assert metadata["sha256"] == zoo_sha256
    assert metadata["url"] == zoo.url + served_path(NAME)
    assert metadata["detectron2_name"] == "densepose_rcnn_R_50_FPN_s1x"

    # cached: no second download, under either name
    assert resolve_weights(NAME, progress=False) == path
    assert resolve_weights("densepose_rcnn_R_50_FPN_s1x", progress=False) == path
    assert cached_path(NAME) == path
    assert len(zoo.requests) == 1
    print(f"download + verify + import: {first:.1f} s")


def test_a_cut_connection_resumes_with_a_range_request(zoo, zoo_file):
    cut = 5 * 2**20 + 123
    zoo.cut_next_response_after(cut)
    path = resolve_weights(NAME, progress=False)
    requests = zoo.requests_for(served_path(NAME))
    assert [(r.status, r.range) for r in requests] == [(200, None), (206, f"bytes={cut}-")]
    assert requests[0].sent == cut and requests[1].complete
    assert requests[1].sent == len(zoo_file) - cut
    assert read_weights(path)[2]["sha256"].startswith("162be9")
    assert leftovers(NAME) == [f"{NAME}.pth"]


def test_a_wrong_file_fails_the_hash_and_leaves_nothing(zoo):
    zoo.files[served_path(NAME)] = b"not the model" * 1000
    with pytest.raises(ModelZooError, match="sha256") as info:
        resolve_weights(NAME, progress=False)
    assert "162be9" in str(info.value) and NAME in str(info.value)
    assert leftovers(NAME) == []


def test_a_truncated_file_fails_the_hash_and_leaves_nothing(zoo, zoo_file):
    zoo.files[served_path(NAME)] = zoo_file[:len(zoo_file) // 3]  # complete answer, short file
    with pytest.raises(ModelZooError, match="sha256.*expected one starting with 162be9"):
        resolve_weights(NAME, progress=False)
    assert leftovers(NAME) == []
    assert cached_path(NAME) is None


def test_a_file_that_does_not_import_is_an_error_naming_the_model(zoo):
    """R_101_FPN_s1x with a verified file that has none of its keys."""
    zoo.files[served_path("R_101_FPN_s1x")] = bytes.fromhex(EMPTY_CHECKPOINT_HEX)
    with pytest.raises(ModelZooError, match="R_101_FPN_s1x.*could not be imported"):
        resolve_weights("R_101_FPN_s1x", progress=False)
    assert leftovers("R_101_FPN_s1x") == []


def test_a_missing_file_on_the_server_is_an_error(zoo):
    zoo.files.clear()
    with pytest.raises(ModelZooError, match="HTTP 404"):
        resolve_weights(NAME, progress=False)
    assert leftovers(NAME) == []


def test_an_unreachable_server_fails_fast_with_the_url_and_the_manual_way(tmp_path,
                                                                         monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DENSEPOSE_MODEL_ZOO_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("DENSEPOSE_CACHE", str(tmp_path / "cache"))
    start = time.monotonic()
    with pytest.raises(ModelZooError) as info:
        resolve_weights(NAME, progress=False)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/{find_entry(NAME).path}" in message
    assert "densepose import-d2 model_final_162be9.pkl --config R_50_FPN_s1x" in message
    assert leftovers(NAME) == []


# Processes and the command line ---------------------------------------------------------------

def test_two_processes_fetching_at_once_download_once(zoo):
    command = [sys.executable, "-m", "densepose_ros", "fetch", NAME, "--no-progress"]
    procs = [subprocess.Popen(command, cwd=REPO_ROOT, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(models_dir() / f"{NAME}.pth")
    requests = zoo.requests_for(served_path(NAME))
    assert len(requests) == 1 and requests[0].complete
    assert read_weights(models_dir() / f"{NAME}.pth")[0].name == NAME


def test_models_lists_every_name_and_the_cached_one(zoo, capsys):
    assert main(["fetch", NAME, "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(models_dir() / f"{NAME}.pth")
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in load_registry().names():
        assert any(line.split()[:1] == [name] for line in lines), name
    cached = [line for line in lines if "yes (" in line]
    assert len(cached) == 1 and cached[0].split()[0] == NAME and " MB)" in cached[0]

    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["models"]) == 27
    assert [m["name"] for m in data["models"] if m["cached"]] == [NAME]
    assert all({"box_ap", "gps_ap", "gpsm_ap", "path", "sha256_prefix"} <= set(m)
               for m in data["models"])


def test_fetch_of_an_unknown_name_exits_2_with_close_matches(zoo, capsys):
    assert main(["fetch", "R_50_FPN_s1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "densepose fetch: error" in err and "R_50_FPN_s1x" in err
    assert zoo.requests == []


def test_base_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("DENSEPOSE_MODEL_ZOO_URL", raising=False)
    assert model_zoo.download_url(find_entry(NAME)) == (
        "https://dl.fbaipublicfiles.com/densepose/"
        "densepose_rcnn_R_50_FPN_s1x/165712039/model_final_162be9.pkl")
    monkeypatch.setenv("DENSEPOSE_MODEL_ZOO_URL", "http://mirror.local/zoo/")
    assert model_zoo.download_url(find_entry(NAME)).startswith("http://mirror.local/zoo/dens")


@pytest.mark.ros
def test_the_node_takes_a_model_zoo_name_and_later_starts_offline(zoo, ros_process, client,
                                                                  monkeypatch):
    from node_fixtures import PARAMS_FILE

    # What a user types: the model's name as the weights parameter; and the torch backend,
    # because auto would export R-50 to ONNX at start-up (minutes here), which is not what
    # this test is about (test_export_onnx covers auto's export).
    args = ["--params-file", str(PARAMS_FILE), "-p", f"weights:={NAME}", "-p",
            "backend:=torch"]
    node = ros_process(["-m", "densepose_ros.ros.node"], ros_args=args, name="node")
    assert client.wait_for_node(timeout=300), node.output()
    assert "R_50_FPN_s1x" in node.output() and cached_path(NAME) is not None
    assert len(zoo.requests_for(served_path(NAME))) == 1
    node.popen.send_signal(2)
    node.popen.wait(timeout=30)
    client.spin_until(lambda: client.image_pub.get_subscription_count() == 0, 10)
    # No network now: the mirror points at a closed port. The cached model starts the node.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("DENSEPOSE_MODEL_ZOO_URL", f"http://127.0.0.1:{port}/densepose")
    offline = ros_process(["-m", "densepose_ros.ros.node"], ros_args=args, name="offline")
    assert client.wait_for_node(timeout=300), offline.output()
    assert "model loaded" in offline.output()
    assert len(zoo.requests_for(served_path(NAME))) == 1
