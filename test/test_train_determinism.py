"""A training run is a function of its configuration: the same config and seed give the same
weights (what lets the model card's command reproduce the shipped model), another seed does
not. Runs with augmentation on and a loader worker process, as the shipped config does."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from train_fixtures import tiny_synth_set, tiny_train_config

from densepose_ros.inference.checkpoint import read_weights
from densepose_ros.training.trainer import train

STEPS = 4


def _trained_state(data, out, seed):
    cfg = tiny_train_config(data, out, seed=seed, num_workers=1, torch_threads=1,
                            checkpoint_period=STEPS)
    cfg.solver.max_iter = STEPS
    cfg.augmentation = dataclasses.replace(cfg.augmentation, min_sizes=(128, 144, 160),
                                           flip_probability=0.5, jitter_probability=0.8)
    result = train(cfg, progress=False)
    _, state, _ = read_weights(result.checkpoint)
    return state


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("determinism")
    threads = torch.get_num_threads()
    try:
        return (_trained_state(data, root / "a", seed=5), _trained_state(data, root / "b", seed=5),
                _trained_state(data, root / "c", seed=6))
    finally:
        torch.set_num_threads(threads)


def test_same_config_and_seed_give_identical_weights(states):
    first, second, _ = states
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_another_seed_gives_other_weights(states):
    first, _, other_seed = states
    changed = [k for k in first if first[k].is_floating_point()
               and not torch.equal(first[k], other_seed[k])]
    assert len(changed) > len(first) // 2
