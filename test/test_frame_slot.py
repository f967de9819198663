"""The latest-frame slot keeps only the newest frame and counts what it drops."""

import threading
import time

from densepose_ros.ros.frame_slot import LatestFrameSlot, NodeStats


def test_newest_frame_wins_and_drops_are_counted():
    slot = LatestFrameSlot()
    for i in range(200):
        slot.put(i)
    assert slot.take(timeout=0) == 199
    assert slot.dropped == 199
    assert slot.take(timeout=0) is None


def test_slow_consumer_sees_only_recent_frames_and_memory_stays_bounded():
    slot = LatestFrameSlot()
    taken = []

    def consume():
        while True:
            item = slot.take(timeout=1.0)
            if item is None:
                return
            taken.append(item)
            time.sleep(0.01)  # a model slower than the camera

    worker = threading.Thread(target=consume)
    worker.start()
    for i in range(300):
        slot.put(i)
        time.sleep(0.001)
    worker.join()
    assert taken[-1] == 299
    assert taken == sorted(taken)
    assert len(taken) + slot.dropped == 300
    assert slot.dropped > 0


def test_close_wakes_a_waiting_worker():
    slot = LatestFrameSlot()
    result = []
    worker = threading.Thread(target=lambda: result.append(slot.take(timeout=30)))
    worker.start()
    time.sleep(0.05)
    slot.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and result == [None]


def test_stats_rates_and_percentiles():
    stats = NodeStats()
    for i in range(11):
        stats.frame_in(now=i * 0.1)
    for i, latency in enumerate([0.1, 0.2, 0.3, 0.4, 1.0]):
        stats.frame_out(latency, latency / 2, 0.05, now=i * 0.5)
    stats.error("truncated")
    summary = stats.summary()
    assert abs(summary["rate_in_hz"] - 10.0) < 1e-6
    assert abs(summary["rate_out_hz"] - 2.0) < 1e-6
    assert summary["latency_p50_s"] == 0.3
    assert 0.4 < summary["latency_p95_s"] <= 1.0
    assert summary["errors"] == 1 and summary["frames_out"] == 5


def test_recent_errors_are_told_apart_from_old_ones():
    stats = NodeStats()
    assert not stats.errors_within(10.0, now=0.0)
    stats.error("stale_depth", now=100.0)
    assert stats.errors_within(10.0, now=105.0)
    assert not stats.errors_within(10.0, now=111.0)  # health recovers; the count stays
    assert stats.summary()["errors"] == 1 and stats.errors["stale_depth"] == 1
