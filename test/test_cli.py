"""The `densepose` dispatcher: lists verbs, rejects unknown ones, runs as a real process."""

import subprocess
import sys

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
