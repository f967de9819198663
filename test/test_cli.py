"""The `densepose` dispatcher: lists verbs, rejects unknown ones, runs as a real process."""

import subprocess
import sys

import pytest

from densepose_ros.cli import VERBS, main


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


def test_unknown_verb_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown verb 'frobnicate'" in capsys.readouterr().err


def test_module_entry_point_runs_as_process():
    result = subprocess.run(
        [sys.executable, "-m", "densepose_ros", "--help"], capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "import-d2" in result.stdout


@pytest.mark.parametrize("argv", [
    ["import-d2", "{missing}/model_final.pkl", "--config", "R_50_FPN_s1x", "-o", "{tmp}/x.pth"],
    ["infer", "{missing}/photo.jpg", "--weights", "{missing}/w.pth", "--out", "{tmp}/out"],
    ["bench", "--weights", "{missing}/w.pth", "--sizes", "160x120"],
    ["export", "--weights", "{missing}/w.pth", "--out", "{tmp}/onnx"],
    ["build-engine", "{missing}/export"],
    ["eval", "--weights", "{missing}/w.pth", "--data", "{missing}/dp.json"],
    ["train", "--config", "{missing}/train.yaml"],
    ["synth", "--num", "1", "--out", "{tmp}/synth", "--size", "0x240"],
    ["export", "--weights", "{missing}/w.pth", "--out", "{tmp}/onnx", "--input-size", "640"],
    ["fetch", "R_50_FPN_s2x"],
    ["models", "--frobnicate"],
], ids=lambda argv: argv[0])
def test_every_verb_exits_2_on_a_user_error(argv, tmp_path, capsys):
    argv = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse rejects a malformed option itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err, err


def test_an_internal_failure_exits_1_with_its_trace(monkeypatch, capsys):
    import densepose_ros.cli.synth as verb

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(verb, "run", broken)
    assert main(["synth", "--num", "1", "--out", "/tmp/unused"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: a bug" in err and "internal error" in err


def test_sizes_are_width_by_height_everywhere():
    from densepose_ros.cli.common import size_wxh
    from densepose_ros.export.onnx_export import padded_input_size

    assert size_wxh("640x480") == (640, 480)
    assert padded_input_size(*size_wxh("1067x800")) == (800, 1088)  # (height, width) inside
