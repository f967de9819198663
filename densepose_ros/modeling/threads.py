"""One process-wide pool of worker threads for CPU kernels that release the GIL
(torchvision's RoIAlign, the compiled Winograd transforms): they split their work over
``torch.get_num_threads()`` threads, the calling thread taking a share too."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, pool)


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """A shared pool of at least `workers` threads."""
    global _pool
    with _lock:
        # a forked child inherits the executor but not its threads: make a new one there
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
            _pool = (os.getpid(), workers,
                     ThreadPoolExecutor(workers, thread_name_prefix="densepose_cpu"))
        return _pool[2]


def run_split(count: int, shares: int, run: Callable[[int, int], object]) -> list:
    """run(begin, end) over [0, count) in `shares` near-equal consecutive parts, in parallel
    (the first on the calling thread); their results in order."""
    bounds = [count * k // shares for k in range(shares + 1)]
    if shares <= 1:
        return [run(0, count)]
    pending = [worker_pool(shares - 1).submit(run, a, b)
               for a, b in zip(bounds[1:-1], bounds[2:], strict=True)]
    first = run(bounds[0], bounds[1])
    return [first] + [job.result() for job in pending]
