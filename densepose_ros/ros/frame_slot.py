"""Frame hand-over between the ROS callback and the inference worker, and the node's
running statistics. ROS-free, thread-safe.

Frame rate over completeness: the slot holds one frame. A frame that arrives while an older
one still waits replaces it, and the older one is counted as dropped, so the worker always
takes the newest frame and memory stays bounded whatever the input rate.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """A one-element mailbox that keeps the newest item."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        """Offer a new item; never blocks. Replaces (and counts) an item not yet taken."""
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._condition.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` s; None on timeout or after close()."""
        with self._condition:
            if self._item is None and not self._closed:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._condition:
            self._item = None

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        with self._condition:
            self._closed = False


@dataclass
class NodeStats:
    """Counters and recent latencies for /diagnostics (all times in seconds)."""

    window: int = 200
    frames_in: int = 0
    frames_out: int = 0
    errors: Counter = field(default_factory=Counter)
    # monotonic time of the newest error (None: none yet), so health can recover
    last_error_time: float | None = None
    _in_times: deque = field(default_factory=deque)
    _out_times: deque = field(default_factory=deque)
    _latency_stamp: deque = field(default_factory=deque)
    _latency_receive: deque = field(default_factory=deque)
    _inference: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _push(self, queue: deque, value: float) -> None:
        queue.append(value)
        if len(queue) > self.window:
            queue.popleft()

    def frame_in(self, now: float | None = None) -> None:
        with self._lock:
            self.frames_in += 1
            self._push(self._in_times, time.monotonic() if now is None else now)

    def frame_out(self, stamp_latency: float, receive_latency: float, inference: float,
                  now: float | None = None) -> None:
        with self._lock:
            self.frames_out += 1
            self._push(self._out_times, time.monotonic() if now is None else now)
            self._push(self._latency_stamp, stamp_latency)
            self._push(self._latency_receive, receive_latency)
            self._push(self._inference, inference)

    def error(self, kind: str, now: float | None = None) -> None:
        with self._lock:
            self.errors[kind] += 1
            self.last_error_time = time.monotonic() if now is None else now

    def errors_within(self, seconds: float, now: float | None = None) -> bool:
        """Whether an error was counted in the last ``seconds``."""
        with self._lock:
            if self.last_error_time is None:
                return False
            return (time.monotonic() if now is None else now) - self.last_error_time <= seconds

    @staticmethod
    def _rate(times: deque) -> float:
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    @staticmethod
    def _percentile(values: deque, q: float) -> float:
        return float(np.percentile(np.fromiter(values, float), q)) if values else float("nan")

    def summary(self) -> dict[str, float]:
        """Rates (Hz), counts and latency percentiles (s) over the recent window."""
        with self._lock:
            return {
                "rate_in_hz": self._rate(self._in_times),
                "rate_out_hz": self._rate(self._out_times),
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "errors": sum(self.errors.values()),
                "latency_p50_s": self._percentile(self._latency_stamp, 50),
                "latency_p95_s": self._percentile(self._latency_stamp, 95),
                "processing_p50_s": self._percentile(self._latency_receive, 50),
                "processing_p95_s": self._percentile(self._latency_receive, 95),
                "inference_p50_s": self._percentile(self._inference, 50),
            }
