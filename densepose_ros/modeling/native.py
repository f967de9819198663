"""The Winograd transforms as compiled kernels (``winograd_kernels.c``), built on first use.

Why: with torch operations each transform is eight elementwise passes over tensors larger
than the cache, and on a 2-core CPU they took a third of the exact R-50 DensePose head (the
products themselves run near the machine's peak). One fused pass per transform, in the
machine's own vector instructions, reads and writes each value once.

The source is compiled with the system C compiler (``$CC``, else ``cc``, ``gcc`` or
``clang``; ``-O3 -march=native``, no floating-point contraction or reassociation) into the
cache folder (``paths.cache_dir() / "native"``), keyed by the source, the compiler, its flags
and the CPU, so each machine builds it once (about 0.5 s). Without a compiler, or with
``DENSEPOSE_NATIVE=0``, ``load_kernels()`` returns None and the torch-op transforms run:
the same results, slower. The kernels are called through ctypes, which releases the GIL, so
``torch.get_num_threads()`` Python threads each take a share of the tiles.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from densepose_ros.modeling.threads import run_split
from densepose_ros.paths import cache_dir

LOG = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("winograd_kernels.c")
# No contraction into FMAs and no fast-math: the same float32 arithmetic as the torch ops.
FLAGS = ("-O3", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared")
# Tuned for this CPU's vector units; tried first, then without (compilers that lack it).
NATIVE_ARCH = "-march=native"
# Vector width of the kernels (16 floats): channel counts must be multiples of it.
CHANNEL_MULTIPLE = 16
# Fewer tiles than this run on the calling thread (a thread hand-off costs ~50 us).
MIN_TILES_PER_THREAD = 64

_lock = threading.Lock()
_state: dict[str, object] = {}


def _compiler() -> str | None:
    named = os.environ.get("CC")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))),
                None)


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
        return "\n".join(sorted({line for line in info.splitlines()
                                 if line.startswith(("model name", "flags", "Features",
                                                     "CPU part"))}))
    except OSError:
        return platform.processor()


def _build(compiler: str) -> Path:
    """Compile the kernels (cached by source, compiler, flags and CPU); the library's path."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    folder = cache_dir() / "native"
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for arch in ((NATIVE_ARCH,), ()):
        flags = (*FLAGS, *arch)
        key = hashlib.sha256("\0".join(
            [SOURCE.read_text(), compiler, version, " ".join(flags), platform.machine(),
             _cpu_identity()]).encode()).hexdigest()[:16]
        library = folder / f"winograd-{key}.so"
        if library.is_file():
            return library
        # Compile beside the target and rename: processes building at once never see a
        # half-written library.
        handle, scratch = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(handle)
        done = subprocess.run([compiler, *flags, str(SOURCE), "-o", scratch],
                              capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            os.replace(scratch, library)
            return library
        os.unlink(scratch)
        errors.append(f"{' '.join(flags)}: {done.stderr.strip()[-500:]}")
    raise RuntimeError("; ".join(errors))


class WinogradKernels:
    """The compiled transforms (``winograd_kernels.c``), split over threads.

    Arguments are float32 CPU tensors, NHWC views with channel stride 1 and channel counts
    multiples of ``CHANNEL_MULTIPLE``; tile numbering as in the C source."""

    def __init__(self, library: ctypes.CDLL, path: Path):
        self.path = path
        p, i, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
        self._input = library.winograd_input_tiles
        self._input.argtypes = [p, n, n, n, n, n, n, n, n, n, n, n, p, n, p]
        self._input.restype = None
        self._output = library.winograd_output_tiles
        self._output.argtypes = [p, n, p, i, p, n, n, n, n, n, n, n, n, n, n, n]
        self._output.restype = None
        self._zeros = torch.zeros(0)

    def _split(self, t_begin: int, t_end: int, run) -> None:
        """run(begin, end) over [t_begin, t_end), a share per thread."""
        shares = min(torch.get_num_threads(), max(1, (t_end - t_begin) // MIN_TILES_PER_THREAD))
        run_split(t_end - t_begin, shares,
                  lambda begin, end: run(t_begin + begin, t_begin + end))

    def input_tiles(self, x: torch.Tensor, tiles: torch.Tensor, t_first: int,
                    t_end: int) -> None:
        """tiles[:, t - t_first] = V of tile t of `x` (NHWC [N, H, W, C]) for t in
        [t_first, t_end); `tiles` is [16, >= t_end - t_first, C] with contiguous rows."""
        n, h, w, c = x.shape
        th, tw = (h + 1) // 2, (w + 1) // 2
        _check(x, tiles, t_first, t_end)
        if self._zeros.numel() < c:
            self._zeros = torch.zeros(c)
        sn, sy, sx, _ = x.stride()
        self._split(t_first, t_end, lambda a, b: self._input(
            x.data_ptr(), sn, sy, sx, h, w, c, th, tw, t_first, a, b, tiles.data_ptr(),
            tiles.stride(0), self._zeros.data_ptr()))

    def output_tiles(self, products: torch.Tensor, bias: torch.Tensor, relu: bool,
                     out: torch.Tensor, t_first: int, t_end: int) -> None:
        """Outputs of tiles [t_first, t_end) of `out` (NHWC [N, H, W, K]) from `products`
        ([16, >= t_end - t_first, K], M of tile t at row t - t_first), with bias and ReLU."""
        n, h, w, k = out.shape
        th, tw = (h + 1) // 2, (w + 1) // 2
        _check(out, products, t_first, t_end)
        if bias.dtype != torch.float32 or not bias.is_contiguous() or bias.numel() != k:
            raise ValueError(f"bias must be {k} contiguous float32 values")
        sn, sy, sx, _ = out.stride()
        self._split(t_first, t_end, lambda a, b: self._output(
            products.data_ptr(), products.stride(0), bias.data_ptr(), int(relu),
            out.data_ptr(), sn, sy, sx, h, w, k, th, tw, t_first, a, b))


def _check(nhwc: torch.Tensor, planes: torch.Tensor, t_first: int, t_end: int) -> None:
    """The kernels' preconditions (they read and write raw memory: a wrong layout or range
    is not an error there)."""
    for tensor in (nhwc, planes):
        if tensor.dtype != torch.float32 or tensor.device.type != "cpu":
            raise ValueError("Winograd kernels take float32 CPU tensors")
    if nhwc.stride(3) != 1 or nhwc.shape[3] % CHANNEL_MULTIPLE:
        raise ValueError(f"channels must be contiguous and a multiple of {CHANNEL_MULTIPLE}")
    if planes.shape[0] != 16 or planes.shape[2] != nhwc.shape[3] or planes.stride(2) != 1 \
            or planes.stride(1) != planes.shape[2]:
        raise ValueError(f"tiles must be [16, T, {nhwc.shape[3]}] with contiguous rows")
    n, h, w, _ = nhwc.shape
    if not 0 <= t_first <= t_end <= n * ((h + 1) // 2) * ((w + 1) // 2) \
            or t_end - t_first > planes.shape[1]:
        raise ValueError(f"tiles [{t_first}, {t_end}) do not fit the map or the buffer")


def load_kernels() -> WinogradKernels | None:
    """The compiled kernels, built on first use; None where they are off or cannot be built
    (a warning says why, once per process)."""
    with _lock:
        if "kernels" in _state:
            return _state["kernels"]
        kernels = None
        if os.environ.get("DENSEPOSE_NATIVE", "1") == "0":
            LOG.info("native Winograd kernels off (DENSEPOSE_NATIVE=0): torch-op transforms")
        elif (compiler := _compiler()) is None:
            LOG.warning("no C compiler found (set CC): the Winograd transforms run as torch "
                        "operations (same results, slower)")
        else:
            try:
                path = _build(compiler)
                kernels = WinogradKernels(ctypes.CDLL(str(path)), path)
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                LOG.warning("could not build the native Winograd kernels with %s (%s): the "
                            "transforms run as torch operations (same results, slower)",
                            compiler, error)
        _state["kernels"] = kernels
        return kernels
