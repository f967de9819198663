"""The order training draws images in, for one process or each of several.

``TrainingSampler`` is endless. It draws a source by its ratio, then that source's next image
in a shuffled pass over it; a source is reshuffled each time a pass ends. So every image of
every source is used, once per pass, and the sources are drawn in their proportions, for
the whole run (a sampler lives in the loading process: DataLoader workers only load what it
names, so nothing must be passed to them per epoch).

All processes of a distributed run compute the same global sequence from the seed; process
``r`` of ``N`` takes draws ``r, r + N, r + 2N, ...``. Consecutive global draws
``[k * N * b, (k + 1) * N * b)`` thus make step ``k``'s global batch whatever N is, which is
what makes N processes with batch b train like one with batch N * b.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from densepose_ros.data.dataset import source_offsets

# Sources drawn per call of the random generator (a chunk, for speed).
_CHUNK = 1024


class TrainingSampler(Sampler[int]):
    """Endless indices into a dataset made of ``sizes`` sources (module docstring).

    Args:
        sizes: images per source; the indices are offsets into their concatenation (as
            ``MixedDataset`` numbers them).
        probabilities: share of draws per source (default: one source).
        seed: the whole sequence follows from it.
        rank, world_size: this process's place in a distributed run.
    """

    def __init__(self, sizes: list[int], probabilities: list[float] | np.ndarray | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if probabilities is None:
            probabilities = [1.0] * len(sizes)
        probs = np.asarray(probabilities, dtype=np.float64)
        if len(probs) != len(sizes) or probs.sum() <= 0 or (probs < 0).any():
            raise ValueError(f"one non-negative share per source, got {probabilities}")
        if any(size == 0 for size, p in zip(sizes, probs, strict=True) if p > 0):
            raise ValueError("a source with a positive share has no image")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.sizes = list(sizes)
        self.probabilities = torch.as_tensor(probs / probs.sum())
        self.offsets = source_offsets(self.sizes)
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __iter__(self) -> Iterator[int]:
        yield from (index for draw, index in enumerate(self.global_sequence())
                    if draw % self.world_size == self.rank)

    def global_sequence(self) -> Iterator[int]:
        """Every process's draws in order, interleaved (process ``r`` takes every N-th)."""
        chooser = torch.Generator().manual_seed(self.seed)
        passes = [self._passes(source) for source in range(len(self.sizes))]
        single = len(self.sizes) == 1
        while True:
            sources = ([0] * _CHUNK if single else
                       torch.multinomial(self.probabilities, _CHUNK, replacement=True,
                                         generator=chooser).tolist())
            for source in sources:
                yield int(self.offsets[source]) + next(passes[source])

    def _passes(self, source: int) -> Iterator[int]:
        """Shuffled passes over one source, forever (its own generator: another source's
        share does not change its order)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + source)
        while True:
            yield from torch.randperm(self.sizes[source], generator=generator).tolist()
