"""Training starts from a project weights file or from a detectron2 model-zoo checkpoint
(``init_weights=``): with a zero learning rate the trained parameters are exactly the file's,
so the run really started there; a file of another model is a clear error."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import d2_checkpoint  # noqa: F401
from train_fixtures import tiny_synth_set, tiny_train_config

from densepose_ros.inference.checkpoint import import_detectron2, read_weights, save_weights
from densepose_ros.modeling import build_model, get_config
from densepose_ros.training.trainer import TrainingError, train


def _train_without_moving(data, out, model: str, init_weights: str) -> dict:
    """Two steps at learning rate 0 (the optimiser runs, the parameters must not move)."""
    cfg = tiny_train_config(data, out, model=model, init_weights=init_weights,
                            torch_threads=1, checkpoint_period=2)
    cfg.solver.base_lr = 0.0
    cfg.solver.max_iter = 2
    result = train(cfg, progress=False)
    _, state, _ = read_weights(result.checkpoint)
    return state


def _parameters_equal(model_name: str, trained: dict, initial: dict) -> list[str]:
    names = [n for n, _ in build_model(get_config(model_name)).named_parameters()]
    assert names
    return [n for n in names if not torch.equal(trained[n], initial[n].to(trained[n].dtype))]


def test_training_starts_from_a_project_weights_file(tmp_path_factory):
    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("init_project")
    torch.manual_seed(42)  # not the run's seed: the run must not re-initialise
    cfg = get_config("R_18_FPN_tiny")
    initial_model = build_model(cfg)
    weights = save_weights(root / "start.pth", initial_model, cfg)
    trained = _train_without_moving(data, root / "run", "R_18_FPN_tiny", str(weights))
    assert _parameters_equal("R_18_FPN_tiny", trained, initial_model.state_dict()) == []


def test_training_starts_from_a_detectron2_checkpoint(tmp_path_factory,
                                                      d2_checkpoint):  # noqa: F811
    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("init_d2")
    name = "R_50_FPN_s1x_legacy"
    pkl = d2_checkpoint(name)
    trained = _train_without_moving(data, root / "run", name, str(pkl))
    assert _parameters_equal(name, trained, import_detectron2(pkl, name)) == []


def test_weights_of_another_model_are_a_clear_error(tmp_path_factory):
    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("init_other")
    cfg = get_config("R_18_FPN_lite")
    weights = save_weights(root / "lite.pth", build_model(cfg), cfg)
    with pytest.raises(TrainingError, match="holds model R_18_FPN_lite.*R_18_FPN_tiny"):
        _train_without_moving(data, root / "run", "R_18_FPN_tiny", str(weights))
