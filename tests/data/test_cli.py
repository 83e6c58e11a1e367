"""`graft data list|show` and `graft finetune` from the command line."""

from __future__ import annotations

import json

from graftkit.cli.main import main
from graftkit.data import load_dataset

from .helpers import save_tiny_with_tokenizer


def test_data_show_and_list(capsys, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_DATA", "/nonexistent/graftkit-data")
    assert main(["data", "show", "synthetic-topic", "-n", "2"]) == 0
    shown = capsys.readouterr()
    assert "train" in shown.out + shown.err and "3000" in shown.out + shown.err
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr()
    assert "synthetic-sentiment" in listing.out + listing.err


def test_unknown_dataset_exits_2_with_a_suggestion(capsys):
    assert main(["data", "show", "emotoin"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'emotoin'" in err and "emotion" in err


def test_finetune_command(tmp_path, capsys):
    folder = save_tiny_with_tokenizer("bert", tmp_path / "base", load_dataset("synthetic-sentiment"))
    out = tmp_path / "expert"
    code = main(["finetune", str(folder), str(out), "--task", "synthetic-sentiment", "--steps", "4",
                 "--batch-size", "8", "--val", "40", "--threads", "1", "--seed", "3"])
    assert code == 0
    record = json.loads((out / "graftkit_finetune.json").read_text())
    assert record["validation_n"] == 40 and record["settings"]["seed"] == 3
    assert main(["finetune", str(folder), str(out), "--task", "synthetic-sentiment"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
