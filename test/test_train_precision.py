"""`precision: bf16`: the step runs in bfloat16 (autocast) while the weights and the
optimiser stay float32."""

from __future__ import annotations

import math

import torch
from train_fixtures import tiny_synth_set, tiny_train_config

from densepose_ros.training.distributed import DistributedContext
from densepose_ros.training.trainer import _start_run


def test_bf16_steps_compute_in_bfloat16_with_float32_weights(tmp_path_factory):
    data = tiny_synth_set(tmp_path_factory)
    cfg = tiny_train_config(data, tmp_path_factory.mktemp("bf16") / "run", precision="bf16")
    run = _start_run(cfg, False, DistributedContext())
    seen = []
    handle = run.model.roi_heads.box_head.fc1.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype))
    batch = next(iter(run.loader))
    before = run.model.roi_heads.box_head.fc1.weight.detach().clone()
    output, loss, _ = run.step(batch, 1e-3, 0)
    handle.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert math.isfinite(float(loss))
    weight = run.model.roi_heads.box_head.fc1.weight
    assert weight.dtype == torch.float32 and not torch.equal(weight.detach(), before)
    state = run.optimizer.state[weight]
    assert state["exp_avg"].dtype == torch.float32
