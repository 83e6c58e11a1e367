import json

import pytest

from graftkit.cli import main as cli


def _write_config(tmp_path, folders, extra=""):
    path = tmp_path / "fuse.yaml"
    path.write_text(
        "models:\n"
        f"  - {{name: a, path: {folders['llama']}}}\n"
        f"  - {{name: b, path: {folders['llama_b']}}}\n"
        "adapter_type: bottleneck\nadapter: {rank: 4}\nrouter_type: token_level\nrouter: {top_k: 1}\n"
        "layers:\n  - [[a, 0], [b, 0]]\n  - [[a, 1], [b, 1]]\n" + extra)
    return path


def test_fuse_build_then_export_and_push(tiny_folders, tmp_path, capsys):
    config = _write_config(tmp_path, tiny_folders)
    assert cli.main(["fuse", str(config), str(tmp_path / "fused")]) == 0
    probe = json.loads((tmp_path / "fused" / "probe.json").read_text())
    assert all(c > 0 for c in probe["relative_change_per_layer"]) and len(probe["router"]) == 2
    assert cli.main(["fuse", "export", str(tmp_path / "fused"), str(tmp_path / "static")]) == 0
    assert (tmp_path / "static" / "config.json").is_file()
    assert cli.main(["push", str(tmp_path / "static"), f"file://{tmp_path / 'repo'}"]) == 0
    assert (tmp_path / "repo" / "config.json").is_file()
    assert "pushed" in capsys.readouterr().err


def test_fuse_errors_are_one_line(tiny_folders, tmp_path, capsys):
    config = _write_config(tmp_path, tiny_folders, "").read_text().replace("[b, 1]", "[b, 9]")
    (tmp_path / "bad.yaml").write_text(config)
    assert cli.main(["fuse", str(tmp_path / "bad.yaml"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "expert 'b' has 2 layers" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_fuse_help_teaches(capsys):
    with pytest.raises(SystemExit):
        cli.app(["fuse", "--help"])
    out = capsys.readouterr().out
    assert "graft fuse CONFIG OUT" in out and "train" in out and "eval" in out


def test_fuse_train_then_eval(tiny_folders, tmp_path, capsys):
    config = _write_config(tmp_path, tiny_folders)
    out = tmp_path / "trained"
    assert cli.main(["fuse", "train", str(config), str(out), "--data", "synthetic-sentiment", "--n", "32",
                     "--steps", "4", "--batch-size", "8", "--eval-n", "16"]) == 0
    report = json.loads((out / "training.json").read_text())
    assert report["steps"] == 4 and report["validation"]["metric"] == "accuracy" and report["validation"]["n"] == 16
    assert cli.main(["fuse", "eval", str(out), "--data", "synthetic-sentiment", "--n", "16"]) == 0
    assert f"accuracy {report['validation']['accuracy']:.4f}" in capsys.readouterr().err
