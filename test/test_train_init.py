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


@pytest.mark.parametrize("name", ["R_18_FPN_tiny_kp", "R_18_FPN_tiny_kp_xtalk"])
def test_multi_task_models_start_from_their_single_task_model(tmp_path, name):
    """The keypoint variants fine-tune from the single-task weights: everything the base had
    is loaded, so detections and charts start identical (cross-talk inputs at 0)."""
    from densepose_ros.training.config import TrainConfig
    from densepose_ros.training.trainer import initial_model

    torch.manual_seed(7)
    base_cfg = get_config("R_18_FPN_tiny")
    base = build_model(base_cfg)
    weights = save_weights(tmp_path / "base.pth", base, base_cfg)
    _, base_state, _ = read_weights(weights)
    base.load_state_dict(base_state)  # the file's (float16-stored) values
    extended, cfg = initial_model(TrainConfig(model=name, init_weights=str(weights)))
    assert cfg.keypoints.enabled
    images = torch.rand(1, 3, 320, 416) * 255
    base.eval()
    extended.eval()
    with torch.no_grad():
        features = base.backbone_features(images)
        boxes = torch.tensor([[40.0, 30.0, 200.0, 300.0], [150.0, 20.0, 380.0, 310.0]])
        expected = base.densepose_on_boxes(features, [boxes])
        got = extended.densepose_on_boxes(extended.backbone_features(images), [boxes])
    for field in ("coarse_segm", "fine_segm", "u", "v"):
        torch.testing.assert_close(getattr(got, field), getattr(expected, field))
    heatmaps = extended.keypoint_heatmaps(extended.backbone_features(images), [boxes])
    assert heatmaps.shape[:2] == (2, 17)


def test_a_multi_task_file_starts_its_single_task_model(tmp_path):
    """The other way (the default model has a keypoint head, recipes train the model without
    it from there): everything but the keypoint head is loaded, so charts start identical; a
    cross-talk file cannot (its DensePose head reads the heatmaps) and is a clear error."""
    from densepose_ros.training.config import TrainConfig
    from densepose_ros.training.trainer import initial_model

    torch.manual_seed(11)
    kp_cfg = get_config("R_18_FPN_tiny_kp")
    weights = save_weights(tmp_path / "kp.pth", build_model(kp_cfg), kp_cfg)
    _, kp_state, _ = read_weights(weights)
    single, cfg = initial_model(TrainConfig(model="R_18_FPN_tiny", init_weights=str(weights)))
    assert not cfg.keypoints.enabled
    loaded = single.state_dict()
    assert loaded.keys() < kp_state.keys()
    assert all(k.startswith("roi_heads.keypoint_head.") for k in kp_state.keys() - loaded.keys())
    assert [k for k in loaded if not torch.equal(loaded[k], kp_state[k].to(loaded[k].dtype))] == []

    xtalk_cfg = get_config("R_18_FPN_tiny_kp_xtalk")
    xtalk = save_weights(tmp_path / "xtalk.pth", build_model(xtalk_cfg), xtalk_cfg)
    with pytest.raises(TrainingError, match="holds model R_18_FPN_tiny_kp_xtalk"):
        initial_model(TrainConfig(model="R_18_FPN_tiny", init_weights=str(xtalk)))
