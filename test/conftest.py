"""Shared pytest fixtures: isolated ROS 2 domains and real node processes.

Every ROS test gets its own ``ROS_DOMAIN_ID`` (and localhost-only discovery), so tests and
parallel runs never hear each other; processes started through ``ros_process`` are always
stopped (SIGINT, then SIGTERM, then SIGKILL) and their output is kept for failure reports.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# This test process starts many subprocesses and forks after running inference; OpenVINO's
# thread pools (oneTBB) are not fork-safe and crashed it (SIGSEGV while waiting on a child)
# when `auto` loaded OpenVINO in-process. So `auto` in this process picks onnxruntime; the
# nodes and tools started as processes (ros_process) run the real `auto`, and the tests that
# use OpenVINO in-process (marker `openvino`) run last.
AUTO_OPENVINO_ENV = "DENSEPOSE_AUTO_OPENVINO"
os.environ[AUTO_OPENVINO_ENV] = "0"

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DIR = Path(__file__).resolve().parent

# Domain IDs 1..100 are safe on Linux (the ports of higher IDs may collide with ephemeral
# ports); the offset spreads concurrent pytest processes apart.
_domain_ids = itertools.count((os.getpid() * 7) % 100)


def ros_available() -> bool:
    try:
        import rclpy  # noqa: F401

        from densepose_ros.msg import DensePersonArray  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    """Tests running OpenVINO in this process go last (see AUTO_OPENVINO_ENV above). ROS
    tests need rclpy and the built messages; `make test` requires them (no skips)."""
    items.sort(key=lambda item: item.get_closest_marker("openvino") is not None)
    if ros_available():
        return
    if os.environ.get("DENSEPOSE_REQUIRE_ROS") == "1":
        raise pytest.UsageError(
            "rclpy or densepose_ros.msg is not importable; run `make setup` and source "
            "install/setup.bash (the Makefile does this)"
        )
    skip = pytest.mark.skip(reason="ROS 2 (rclpy + built densepose_ros messages) not available")
    for item in items:
        if "ros" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory) -> Path:
    """One seeded, untrained light model in the project's weight format, for node tests."""
    from node_fixtures import make_test_weights

    return make_test_weights(tmp_path_factory.mktemp("weights") / "untrained_light.pth")


@pytest.fixture
def client(rclpy_context):
    """Test-side ROS client of the node (see node_fixtures.RosClient)."""
    from node_fixtures import RosClient

    client = RosClient(rclpy_context)
    yield client
    client.close()


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A ROS domain of this test alone, exported to this process and its children."""
    domain = 1 + next(_domain_ids) % 100
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def rclpy_context(ros_domain) -> Iterator[object]:
    """An initialised rclpy context in the test process, on the test's own domain."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros_domain)
    try:
        yield context
    finally:
        context.try_shutdown()


@dataclass
class RosProcess:
    """A process started by the ``ros_process`` fixture."""

    popen: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_output(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if not self.alive():
                return text in self.output()
            time.sleep(0.1)
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def ros_process(ros_domain, tmp_path, request) -> Iterator[Callable[..., RosProcess]]:
    """Factory: ``start(argv, ros_args=[...], name=...)`` runs ``python argv...`` with
    ``--ros-args`` appended, in the test's ROS domain, and always cleans it up."""
    started: list[RosProcess] = []

    def start(
        argv: list[str], ros_args: list[str] | None = None, name: str = "proc"
    ) -> RosProcess:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        cmd = [sys.executable, *argv]
        if ros_args is not None:
            cmd += ["--ros-args", *ros_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # processes under test choose their backend as users' do (auto: OpenVINO here)
        env.pop(AUTO_OPENVINO_ENV, None)
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the process below
        popen = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        proc = RosProcess(popen=popen, log_path=log_path)
        started.append(proc)
        return proc

    yield start
    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    for proc in started:
        _stop(proc.popen)
        if failed:
            tail = proc.output()[-4000:]
            sys.stderr.write(f"\n--- output of {proc.log_path.name} ---\n{tail}\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


def spin_until(context, node, predicate: Callable[[], bool], timeout: float) -> bool:
    """Spin ``node`` until ``predicate()`` holds or ``timeout`` seconds pass."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            executor.spin_once(timeout_sec=0.05)
        return predicate()
    finally:
        executor.remove_node(node)
