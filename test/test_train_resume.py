"""`densepose train` as a real process: killed with SIGKILL mid-run, `--resume` continues from
its last checkpoint losing at most one checkpoint interval; bad input gets a clear error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from train_fixtures import tiny_synth_set, tiny_train_config

from densepose_ros.cli import main as cli_main
from densepose_ros.inference.checkpoint import load_model, read_weights
from densepose_ros.training.trainer import FINAL_WEIGHTS, LAST_CHECKPOINT, METRICS_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
PERIOD = 3
MAX_ITER = 11


def _command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "densepose_ros", "train", "--config", str(config),
            "--no-progress", *extra]


def _logged_steps(run: Path) -> list[int]:
    lines = (run / METRICS_FILE).read_text().splitlines() if (run / METRICS_FILE).exists() \
        else []
    steps = []
    for line in lines:
        try:
            steps.append(int(json.loads(line)["iteration"]))
        except (json.JSONDecodeError, KeyError):
            pass  # a line cut short by the kill
    return steps


@pytest.fixture(scope="module")
def run_config(tmp_path_factory) -> tuple[Path, Path]:
    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("resume")
    run = root / "run"
    cfg = tiny_train_config(data, run, checkpoint_period=PERIOD)
    cfg.solver.max_iter = MAX_ITER
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict()))))  # tuples -> lists
    return config, run


def test_killed_run_resumes_losing_at_most_one_interval(run_config):
    config, run = run_config
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(_command(config, "torch_threads=1"), cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # kill between two checkpoints, after at least one has been written
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            steps = _logged_steps(run)
            if steps and steps[-1] >= PERIOD + 2:
                break
            time.sleep(0.2)
        assert process.poll() is None, process.stdout.read().decode()[-2000:]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    reached = _logged_steps(run)[-1]
    assert reached < MAX_ITER and not (run / FINAL_WEIGHTS).exists()
    _, _, metadata = read_weights(run / LAST_CHECKPOINT)
    saved = metadata["iteration"]
    assert saved % PERIOD == 0 and reached - PERIOD <= saved <= reached

    resumed = subprocess.run(_command(config, "--resume"), cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"trained steps {saved}..{MAX_ITER}" in resumed.stdout
    # the metrics of the lost interval were dropped; every step is logged exactly once
    assert _logged_steps(run) == list(range(1, MAX_ITER + 1))
    payload = torch.load(run / LAST_CHECKPOINT, weights_only=True)
    assert payload["training_state"]["iteration"] == MAX_ITER
    # AdamW's step counters continued from the checkpoint instead of restarting at 0
    steps = {int(s["step"]) for s in payload["training_state"]["optimizer"]["state"].values()}
    assert steps == {MAX_ITER}
    model, cfg = load_model(run / FINAL_WEIGHTS)
    assert cfg.name == "R_18_FPN_tiny" and not model.training


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"datasets": [{"annotations": "a.json",
                                                    "symmetry": "anny"}],
                                      "output_dir": str(tmp_path / "empty")}))
    assert cli_main(["train", "--config", str(config), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LAST_CHECKPOINT).write_bytes(b"not a checkpoint at all")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"datasets": [{"annotations": "a.json",
                                                    "symmetry": "anny"}],
                                      "output_dir": str(run)}))
    assert cli_main(["train", "--config", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "last.pth" in err


def test_weights_file_without_training_state_cannot_be_resumed(tmp_path, capsys):
    from densepose_ros.inference.checkpoint import save_weights
    from densepose_ros.modeling.config import get_config
    from densepose_ros.modeling.model import build_model

    run = tmp_path / "run"
    cfg = get_config("R_18_FPN_tiny")
    save_weights(run / LAST_CHECKPOINT, build_model(cfg), cfg)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"model": "R_18_FPN_tiny", "output_dir": str(run),
                                      "datasets": [{"annotations": "a.json",
                                                    "symmetry": "anny"}]}))
    assert cli_main(["train", "--config", str(config), "--resume"]) == 2
    assert "no training state" in capsys.readouterr().err


_ONE_SET = "datasets: [{annotations: a.json, symmetry: anny}]\n"


@pytest.mark.parametrize(("yaml_text", "overrides", "message"), [
    ("model: R_18_FPN_tiny\n", [], "missing config key 'datasets'"),
    ("datasets: [{images: x}]\n", [], "datasets[0]: missing key 'annotations'"),
    # DensePose-COCO needs DensePose's own chart symmetry: never a silent default
    ("datasets: [{annotations: coco.json}]\n", [], "missing key 'symmetry'"),
    ("datasets: [{annotations: a.json, symmetry: anny}]\nsolver: {max_iters: 5}\n", [],
     "unknown key(s) ['max_iters']"),
    (_ONE_SET, ["solver.lr=0.1"], "unknown override key"),
    (_ONE_SET, ["batch_size=two"], "batch_size: expected int"),
    (_ONE_SET, ["solver.optimizer=adam"], "'sgd' or 'adamw'"),
])
def test_bad_config_is_a_clear_error(tmp_path, capsys, yaml_text, overrides, message):
    config = tmp_path / "train.yaml"
    config.write_text(yaml_text)
    assert cli_main(["train", "--config", str(config), *overrides]) == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"datasets": [{"annotations": str(tmp_path / "no.json"),
                                                    "symmetry": "anny"}],
                                      "output_dir": str(tmp_path / "run"), "device": "cpu"}))
    assert cli_main(["train", "--config", str(config)]) == 2
    assert "cannot load the training data" in capsys.readouterr().err


def test_sigterm_stops_after_the_step_with_a_checkpoint(tmp_path_factory):
    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("sigterm")
    run = root / "run"
    cfg = tiny_train_config(data, run, checkpoint_period=100)  # no periodic checkpoint
    cfg.solver.max_iter = 50
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict()))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(_command(config, "torch_threads=1"), cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            if _logged_steps(run)[-1:] >= [2]:
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    _, _, metadata = read_weights(run / LAST_CHECKPOINT)
    assert metadata["iteration"] == _logged_steps(run)[-1] >= 2
    assert f"trained steps 0..{metadata['iteration']}" in output
    assert not (run / FINAL_WEIGHTS).exists()


def test_stop_at_ends_the_call_but_keeps_the_schedule(tmp_path_factory, capsys):
    from densepose_ros.training.config import load_train_config
    from densepose_ros.training.trainer import learning_rate

    data = tiny_synth_set(tmp_path_factory)
    root = tmp_path_factory.mktemp("stop_at")
    run = root / "run"
    cfg = tiny_train_config(data, run, checkpoint_period=100, torch_threads=1)
    cfg.solver.max_iter = 6
    cfg.solver.warmup_iters = 0
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict()))))
    assert cli_main(["train", "--config", str(config), "--no-progress", "--stop-at", "3"]) == 0
    _, _, metadata = read_weights(run / LAST_CHECKPOINT)
    assert metadata["iteration"] == 3
    assert not (run / FINAL_WEIGHTS).exists()
    # the learning rate followed the 6-step schedule, not a 3-step one
    rows = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    loaded = load_train_config(config)
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert rows[-1]["lr"] == pytest.approx(learning_rate(loaded, 2))
    assert learning_rate(loaded, 2) == pytest.approx(0.75 * loaded.solver.base_lr)  # 3 of 6
    # --resume finishes the run
    assert cli_main(["train", "--config", str(config), "--no-progress", "--resume"]) == 0
    assert (run / FINAL_WEIGHTS).is_file()
    assert "trained steps 3..6" in capsys.readouterr().out
