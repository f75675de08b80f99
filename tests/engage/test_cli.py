"""The ``engage`` app itself (``engage.cli``): version, help, exit codes, usage errors."""

from __future__ import annotations

import errno
import subprocess
import sys
from importlib.metadata import version

import pytest
import typer

from engage.cli import EXIT_BAD_INPUT, app, main

COMMANDS = ("validate", "features", "synth", "train", "evaluate", "promote", "score", "serve")


def _commands() -> dict:
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_version_is_the_installed_one(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"engage {version('engage')}"


def test_python_dash_m_engage_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "engage", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"engage {version('engage')}"


def test_every_command_is_there_with_a_description():
    commands = _commands()
    assert tuple(commands) == COMMANDS
    for name, command in commands.items():
        assert (command.help or "").strip(), f"engage {name} has no description"
        assert len(command.get_short_help_str(limit=100)) > 20, name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_and_no_default_of_none_is_shown(name, capsys):
    command = _commands()[name]
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), f"engage {name} {param.name}: no help"
    assert main([name, "--help"]) == 0
    shown = capsys.readouterr().out
    assert "default: None" not in shown and "[default: None]" not in shown
    assert "--help" in shown


def test_defaults_are_shown_in_help(capsys):
    assert main(["train", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for default in ("[default: 5]", "[default: engage]", "[default: models]", "[default: pandas]"):
        assert default in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # no command, an unknown one, an unknown option, a choice not offered: exit 2
        ([], "Missing command"),
        (["predict"], "No such command 'predict'"),
        (["validate", "--profile", "p.csv"], "No such option: --profile"),
        (["features", "--out", "f.csv", "--engine", "spark"], "'spark' is not one of"),
        (["score", "--out", "s.csv", "--rank-by", "fame"], "'fame' is not one of"),
        (["features"], "Missing option '--out'"),
    ],
)
def test_usage_errors_exit_2_with_the_reason_on_stderr(argv, message, capsys):
    assert main(argv) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_closed_output_pipe_exits_2_not_1(monkeypatch, capsys):
    # `engage validate | head`: the reader goes away and the write fails with EPIPE.
    def closed_pipe(*args, **kwargs):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    # Typer swaps the standard streams on EPIPE; monkeypatch puts them back after the test.
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr("features.contract.load_and_validate", closed_pipe)
    assert main(["validate"]) == EXIT_BAD_INPUT
    assert "cannot read or write a file" in capsys.readouterr().err


def test_help_imports_none_of_the_library(tmp_path):
    # `engage COMMAND --help` starts in a fraction of the time the data libraries take to load:
    # they are imported inside the commands.
    script = (
        "import sys\n"
        "from engage.cli import main\n"
        "assert main(['validate', '--help']) == 0\n"
        "heavy = ('pandas', 'numpy', 'pyarrow', 'lightgbm', 'mlflow', 'features.contract')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"
