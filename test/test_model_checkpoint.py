"""Configurations, our weight files and the detectron2 importer's error handling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from model_fixtures import PARITY_DIR, d2_checkpoint, light_model, light_weights  # noqa: F401

from densepose_ros.cli import main as cli_main
from densepose_ros.inference.checkpoint import (
    import_detectron2,
    load_model,
    read_weights,
    save_weights,
)
from densepose_ros.modeling import CONFIG_NAMES, ModelConfig, build_model, get_config
from densepose_ros.modeling.config import LIGHT_CONFIG_NAME


def test_named_configurations_exist_and_round_trip():
    for name in ("R_50_FPN_s1x_legacy", "R_101_FPN_s1x_legacy", "R_50_FPN_s1x",
                 "R_101_FPN_s1x", LIGHT_CONFIG_NAME):
        assert name in CONFIG_NAMES
        cfg = get_config(name)
        assert cfg.name == name
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    legacy, s1x = get_config("R_50_FPN_s1x_legacy"), get_config("R_50_FPN_s1x")
    assert (legacy.densepose.heatmap_size, s1x.densepose.heatmap_size) == (56, 112)
    assert legacy.densepose.num_coarse_segm_channels == 15 and not legacy.densepose.decoder_on
    assert get_config("densepose_rcnn_R_101_FPN_s1x").backbone.depth == 101
    with pytest.raises(ValueError, match="unknown model config 'R_7'"):
        get_config("R_7")
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({**s1x.to_dict(), "colour": 1})


def test_state_dict_layout_equals_detectron2_for_every_zoo_config():
    """Keys and shapes of our models equal detectron2's (keys.json lists its state dicts)."""
    keys = json.loads((PARITY_DIR / "keys.json").read_text())
    for name in ("R_50_FPN_s1x_legacy", "R_50_FPN_s1x", "R_101_FPN_s1x"):
        cfg = get_config(name)
        ours = {k: list(v.shape) for k, v in build_model(cfg).state_dict().items()}
        assert ours == {k: shape for k, shape, _ in keys[cfg.detectron2_config]}, name


def test_light_configuration_runs_and_is_small(light_model):  # noqa: F811
    model, cfg = light_model
    params = sum(p.numel() for p in model.parameters())
    assert params < 20e6  # documented in docs/model.md: 16.3 M
    images = torch.zeros(1, 3, 480, 640)
    with torch.inference_mode():
        (boxes, scores, charts), = model(images, [(480, 640)])
    assert boxes.shape[1] == 4 and len(scores) == len(boxes) <= cfg.box_head.max_detections
    assert charts.coarse_segm.shape == (len(boxes), 2, 56, 56)


def test_save_and_load_round_trip(light_model, light_weights):  # noqa: F811
    model, cfg = light_model
    loaded, loaded_cfg = load_model(light_weights)
    assert loaded_cfg == cfg
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    _, _, metadata = read_weights(light_weights)
    assert metadata == {"note": "test weights"}


def test_load_errors_name_the_problem(tmp_path, light_weights):  # noqa: F811
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "absent.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a readable weights file"):
        load_model(corrupt)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(light_weights.read_bytes()[:100_000])
    with pytest.raises(ValueError, match="truncated.pth"):
        load_model(truncated)
    d2_style = tmp_path / "d2.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, d2_style)
    with pytest.raises(ValueError, match="import-d2"):
        load_model(d2_style)
    # Our format, but the weights do not fit the configuration the file claims.
    cfg, state, _ = read_weights(light_weights)
    state.pop("roi_heads.box_predictor.cls_score.bias")
    mismatched = tmp_path / "mismatched.pth"
    torch.save({"format": "densepose_ros", "version": 1, "config_name": cfg.name,
                "config": cfg.to_dict(), "state_dict": state, "metadata": {}}, mismatched)
    with pytest.raises(ValueError, match="missing keys: roi_heads.box_predictor.cls_score.bias"):
        load_model(mismatched)


def test_folded_model_cannot_be_saved(tmp_path):
    cfg = get_config(LIGHT_CONFIG_NAME)
    model = build_model(cfg).fold_norms()
    with pytest.raises(ValueError, match="folded"):
        save_weights(tmp_path / "x.pth", model, cfg)
    assert not (tmp_path / "x.pth").exists()


def test_import_detectron2_pth_and_bare_state_dict(tmp_path):
    cfg = get_config(LIGHT_CONFIG_NAME)
    torch.manual_seed(0)
    state = build_model(cfg).state_dict()
    path = tmp_path / "d2.pth"
    torch.save({"model": state, "iteration": 5}, path)
    imported = import_detectron2(path, LIGHT_CONFIG_NAME)
    assert imported.keys() == state.keys()
    assert all(torch.equal(imported[k], state[k]) for k in state)


def test_import_detectron2_names_missing_unexpected_and_misshapen_keys(tmp_path,
                                                                      d2_checkpoint):  # noqa: F811
    with pytest.raises(FileNotFoundError):
        import_detectron2(tmp_path / "absent.pkl", "R_50_FPN_s1x_legacy")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"definitely not a pickle")
    with pytest.raises(ValueError, match="not a readable pickle"):
        import_detectron2(garbage, "R_50_FPN_s1x_legacy")
    # The legacy checkpoint imported as the decoder config: the decoder keys are missing and
    # the coarse-segmentation predictor has 15 instead of 2 output channels.
    with pytest.raises(ValueError) as error:
        import_detectron2(d2_checkpoint("R_50_FPN_s1x_legacy"), "R_50_FPN_s1x")
    message = str(error.value)
    assert "missing keys: roi_heads.decoder.p2.0.weight" in message
    assert ("roi_heads.densepose_predictor.ann_index_lowres.weight: expected (512, 2, 4, 4), "
            "got (512, 15, 4, 4)") in message
    extra = tmp_path / "extra.pkl"
    with open(extra, "wb") as f:
        pickle.dump({"model": {"backbone.extra_layer.weight": np.zeros(3, np.float32)}}, f)
    with pytest.raises(ValueError, match="unexpected keys: backbone.extra_layer.weight"):
        import_detectron2(extra, "R_50_FPN_s1x_legacy")


def test_import_d2_command_writes_loadable_weights(tmp_path, d2_checkpoint, capsys):  # noqa: F811
    out = tmp_path / "legacy.pth"
    code = cli_main(["import-d2", str(d2_checkpoint("R_50_FPN_s1x_legacy")), "--config",
                     "R_50_FPN_s1x_legacy", "-o", str(out)])
    assert code == 0
    assert "imported 319 tensors" in capsys.readouterr().out
    cfg, state, metadata = read_weights(out)
    assert cfg.name == "R_50_FPN_s1x_legacy" and len(state) == 319
    assert metadata["imported_from"] == "detectron2"
    code = cli_main(["import-d2", str(tmp_path / "nope.pkl"), "--config", "R_50_FPN_s1x",
                     "-o", str(tmp_path / "x.pth")])
    assert code == 2  # a user error (cli.common)
    assert "nope.pkl" in capsys.readouterr().err


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    # model-zoo files come from the network: only arrays may come out of them
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "model_final_000000.pkl"
    evil.write_bytes(pickle.dumps({"model": {"w": Payload()}}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        import_detectron2(evil, "R_50_FPN_s1x")
