import pytest

from graftkit.cli.main import main


def test_help_lists_the_hybrid_commands(capsys):
    assert main(["hybrid", "--help"]) in (0, None)
    out = capsys.readouterr().out
    for command in ("train", "eval", "generate", "stats"):
        assert command in out


def test_bad_layers_and_missing_model_fail_cleanly(tmp_path, capsys):
    assert main(["hybrid", "train", "SmolLM2-135M-Instruct", str(tmp_path / "o"), "--layers", "a,b"]) == 2
    assert "--layers" in capsys.readouterr().err
    assert main(["hybrid", "eval", str(tmp_path)]) == 2


def test_negative_warmup_fails_before_loading_anything(tmp_path, capsys):
    assert main(["hybrid", "train", "no-such-model", str(tmp_path / "o"), "--warmup-steps", "-1"]) == 2
    assert "warmup_steps" in capsys.readouterr().err
