"""Data-parallel training with ``torch.distributed``: the process group, which process writes,
and the loss normalisation that makes a run independent of how many processes share a batch.

Launch: ``torchrun --nproc_per_node N $(which densepose) train CONFIG`` (``torchrun`` sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``); NCCL on CUDA,
gloo on CPU. Without those variables training is one plain process, as before.

``batch_size`` is the global batch (detectron2's ``IMS_PER_BATCH``): each of the N processes
takes ``batch_size / N`` images per step, so the learning rate needs no change when N does.

The losses are normalised over the global batch, not per process: a mean over this process's
items (RoIs, points, keypoints) is scaled by ``N * local count / global count`` and a sum by
``N``, so that once gradients are averaged over the processes (DDP) they equal those of one
process with the whole batch. (detectron2 normalises per GPU, which changes the loss scale
with the per-GPU batch.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a run: rank 0 of 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints, logs, TensorBoard and previews."""
        return self.rank == 0


def context_from_env() -> DistributedContext:
    """The context ``torchrun`` describes in the environment (none: one process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    return DistributedContext(rank=int(os.environ["RANK"]), world_size=world_size,
                              local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def start(context: DistributedContext, device: torch.device) -> None:
    """Join the process group (NCCL for CUDA devices, gloo otherwise)."""
    if not context.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=context.rank,
                            world_size=context.world_size)


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_sum(value: float) -> float:
    """``value`` summed over all processes (itself when not distributed)."""
    if world_size() == 1:
        return float(value)
    total = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total.item())


def mean_share(local_count: int | torch.Tensor) -> float:
    """Factor that turns a mean over this process's ``local_count`` items into its share of
    the mean over every process's items, once gradients are averaged (module docstring).
    1 when not distributed. Every process must call it at the same point (a collective)."""
    if world_size() == 1:  # before float(): no device sync per loss in one process
        return 1.0
    count = float(local_count)
    total = global_sum(count)
    return world_size() * count / total if total > 0 else 1.0


def sum_share() -> float:
    """Factor for a loss that sums over this process's items (module docstring)."""
    return float(world_size())


def any_process(flag: bool) -> bool:
    """True on every process when it is true on any (e.g. a stop request: all must stop at
    the same step, or the others wait forever in the next collective)."""
    return global_sum(1.0 if flag else 0.0) > 0


class SyncBatchNorm2d(torch.nn.BatchNorm2d):
    """A BatchNorm2d whose training statistics are those of the global batch, over every
    process, on any device (torch's SyncBatchNorm runs on GPUs only; the models trained from
    scratch use batch norm). Same parameters and buffers as BatchNorm2d, so checkpoints do
    not change. Outside distributed training it is a BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce  # differentiable

        channels = x.shape[1]
        count = x.new_tensor([x.numel() / channels])
        # two passes (mean, then squared deviations) keep float32 as exact as BatchNorm2d
        total = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        n = total[-1]
        mean = total[:channels] / n
        centred = x - mean[None, :, None, None]
        var = all_reduce(centred.square().sum(dim=(0, 2, 3))) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None \
                else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return centred * scale[None, :, None, None] + self.bias[None, :, None, None]


def synchronise_batch_norms(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every BatchNorm2d (frozen ones excepted) made a SyncBatchNorm2d in
    place, parameters and statistics kept."""
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm2d:
            synced = SyncBatchNorm2d(child.num_features, child.eps, child.momentum,
                                     child.affine, child.track_running_stats)
            synced.load_state_dict(child.state_dict())
            synced.to(child.weight.device if child.affine else child.running_mean.device)
            setattr(module, name, synced)
        else:
            synchronise_batch_norms(child)
    return module
