"""The CLI turns a GraftError into one line and exit status 2; --debug adds the traceback."""

import pytest

from graftkit.cli import main as cli
from graftkit.errors import CheckpointError


@pytest.fixture
def failing_command():
    @cli.app.command("fail-for-test", hidden=True)
    def _fail() -> None:
        raise CheckpointError("weights file [/x/model.safetensors] is truncated", hint="download it again")

    yield
    cli.app.registered_commands[:] = [
        c for c in cli.app.registered_commands if c.name != "fail-for-test"
    ]


def test_graft_error_is_one_line_and_exit_2(failing_command, capsys):
    assert cli.main(["fail-for-test"]) == 2
    err = capsys.readouterr().err
    assert "[/x/model.safetensors] is truncated" in err
    assert "download it again" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(failing_command, capsys):
    assert cli.main(["--debug", "fail-for-test"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err


def test_usage_error_exits_2(capsys):
    assert cli.main(["no-such-command"]) == 2


def test_help_teaches(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "graft" in out and "merge" in out.lower()


def test_exit_codes_of_commands_are_kept():
    import typer

    @cli.app.command("exit-3-for-test", hidden=True)
    def _exit() -> None:
        raise typer.Exit(3)

    try:
        assert cli.main(["exit-3-for-test"]) == 3
    finally:
        cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name != "exit-3-for-test"]
