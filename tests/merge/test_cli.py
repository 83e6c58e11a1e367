"""`graft merge` (run by default), `graft merge validate`, `graft merge examples`, `--dry-run`."""

from __future__ import annotations

from graftkit.cli.main import main

from .helpers import load_tensors


def _recipe(tmp_path, family, extra=""):
    b, f1, f2, _ = family
    path = tmp_path / "recipe.yaml"
    path.write_text(f"merge_method: ties\nbase_model: {b}\nmodels:\n"
                    f"  - model: {f1}\n    parameters: {{weight: 0.5, density: 0.5{extra}}}\n"
                    f"  - model: {f2}\n    parameters: {{weight: 0.5, density: 0.5}}\n")
    return path


def test_merge_default_command_writes_card_and_config(llama_family, tmp_path, capsys):
    recipe = _recipe(tmp_path, llama_family)
    out = tmp_path / "out"
    assert main(["merge", str(recipe), str(out), "--seed", "3", "--dtype", "float16"]) == 0
    assert (out / "graftkit_merge.yaml").read_text() == recipe.read_text()
    card = (out / "README.md").read_text()
    assert "ties" in card and "hidden cosine" in card
    assert "vs " in capsys.readouterr().err  # the check's lines
    assert len(load_tensors(out)) == 21
    assert main(["merge", "run", str(recipe), str(out)]) == 2  # exists: refused without --overwrite
    assert main(["merge", str(recipe), str(out), "--overwrite", "--no-check"]) == 0


def test_dry_run_and_validate_read_nothing_and_write_nothing(llama_family, tmp_path, capsys):
    recipe = _recipe(tmp_path, llama_family)
    assert main(["merge", str(recipe), str(tmp_path / "out"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "model.layers.0.mlp.up_proj.weight" in err and "dry run" in err
    assert not (tmp_path / "out").exists()
    assert main(["merge", "validate", str(recipe)]) == 0
    bad = _recipe(tmp_path, llama_family, extra=", lambdaa: 2")
    assert main(["merge", "validate", str(bad)]) == 2
    assert "did you mean 'lambda'" in capsys.readouterr().err


def test_examples_validate(tmp_path, capsys):
    from graftkit.merge.methods import METHODS

    assert main(["merge", "examples", str(tmp_path)]) == 0
    written = sorted(p.stem for p in tmp_path.glob("*.yaml"))
    assert written == sorted(METHODS)
    from graftkit.merge.config import load_config

    for path in tmp_path.glob("*.yaml"):
        assert load_config(path).merge_method == path.stem
