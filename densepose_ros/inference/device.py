"""Which torch device a user's device name means: one rule for inference and training."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' or '': CUDA when available, else the CPU; 'cpu', 'cuda', 'cuda:N' as given.
    ValueError when a CUDA device is asked for and none is available."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return device
