"""`graft align` and `graft interpolate` end to end on tiny HF folders."""

from __future__ import annotations

import json
import string

import pytest
import torch

from graftkit.align import permute_model, random_permutation, spec_for
from graftkit.cli.main import main
from graftkit.io import Checkpoint
from graftkit.zoo import save_tiny, tiny


@pytest.fixture()
def pair(tmp_path):
    save_tiny("bert", tmp_path / "a", head="sequence-classification", seed=0)
    model = tiny("bert", head="sequence-classification", seed=0)
    spec = spec_for(model)
    planted = random_permutation(spec, 1)
    permute_model(model, spec, planted).save_pretrained(tmp_path / "b")
    return tmp_path / "a", tmp_path / "b"


def test_align_undoes_a_planted_permutation(pair, tmp_path):
    a, b = pair
    out = tmp_path / "out"
    assert main(["--quiet", "align", str(a), str(b), str(out)]) == 0
    ck_a, ck_out = Checkpoint.open(a), Checkpoint.open(out)
    for name in ck_a.names():
        torch.testing.assert_close(ck_out[name], ck_a[name], atol=1e-6, rtol=0)
    report = json.loads((out / "alignment.json").read_text())
    assert report["distance_to_A_after"] < 1e-4 < report["distance_to_A_before"]
    assert (out / "config.json").is_file()


def test_align_refuses_different_architectures_and_sizes(pair, tmp_path, capsys):
    a, _ = pair
    save_tiny("llama", tmp_path / "llama")
    assert main(["align", str(a), str(tmp_path / "llama"), str(tmp_path / "x")]) == 2
    assert "one architecture" in capsys.readouterr().err.replace("\n", " ")
    save_tiny("bert", tmp_path / "deeper", head="sequence-classification", num_hidden_layers=3)
    assert main(["align", str(a), str(tmp_path / "deeper"), str(tmp_path / "y")]) == 2
    assert "layer mapping" in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _tokenizer_files(folder):
    """A BERT word-piece vocabulary of 5 specials, letters, ##letters and digits (< 128 ids)."""
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.ascii_lowercase)
    pieces += [f"##{c}" for c in string.ascii_lowercase] + list(string.digits) + list(".,!?'-")
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n")
    from transformers import BertTokenizer

    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)


@pytest.mark.slow
def test_interpolate_reports_barrier_and_plot(tmp_path, datasets_dir, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_DATA", str(datasets_dir))
    for name, seed in (("a", 0), ("b", 1)):
        save_tiny("bert", tmp_path / name, head="sequence-classification", seed=seed)
        _tokenizer_files(tmp_path / name)
    plot, js = tmp_path / "curve.png", tmp_path / "curve.json"
    code = main(["--quiet", "interpolate", str(tmp_path / "a"), str(tmp_path / "b"), "--data", "sst2",
                 "--steps", "3", "--n", "32", "--plot", str(plot), "--json", str(js), "--align", "weight"])
    assert code == 0
    result = json.loads(js.read_text())
    assert len(result["losses"]) == 3 and result["n"] == 32
    assert result["barrier"] == pytest.approx(max(result["losses"]) - 0.5 * (result["losses"][0] + result["losses"][-1]))
    assert plot.stat().st_size > 1000
