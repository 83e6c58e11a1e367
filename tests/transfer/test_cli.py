"""graft extract-lora and graft transfer generate|apply|fingerprint on tiny models; errors exit 2 and write nothing."""

from __future__ import annotations

from graftkit.cli.main import main

from .conftest import random_texts


def said(capsys) -> str:
    """Everything printed (the console writes to stderr and wraps long lines)."""
    r = capsys.readouterr()
    return " ".join((r.out + r.err).split())


def test_extract_then_apply(bert_pair, tmp_path, capsys):
    ft, base = bert_pair
    assert main(["--quiet", "extract-lora", str(ft), str(base), str(tmp_path / "a"), "--rank", "2"]) == 0
    assert (tmp_path / "a" / "adapter_config.json").is_file()
    assert "mean relative error" in said(capsys)
    assert main(["--quiet", "extract-lora", str(ft), str(base), str(tmp_path / "b"), "--rank", "64"]) == 2
    assert "larger than module" in said(capsys) and not (tmp_path / "b").exists()


def test_generate_apply_fingerprint(transfer_folders, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(random_texts(64)))
    f = transfer_folders
    assert main(["--quiet", "transfer", "generate", str(f["expert"]), "-t", str(f["target"]), "-o", str(tmp_path / "ad"),
                 "--texts", str(texts), "--n-texts", "32", "--check-texts", "16", "--rank", "2", "--steps", "3"]) == 0
    assert "teacher agreement" in said(capsys)
    assert main(["--quiet", "transfer", "apply", str(f["target"]), str(tmp_path / "ad"), str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "config.json").is_file()
    # an adapter for another base: error naming the module, nothing written
    assert main(["--quiet", "transfer", "apply", str(f["base"]), str(tmp_path / "ad"), str(tmp_path / "bad")]) == 2
    assert "encoder.layer" in said(capsys) and not (tmp_path / "bad").exists()
    assert main(["--quiet", "transfer", "fingerprint", f"a={f['expert']}@{f['base']}", f"b={f['target']}@{f['base']}",
                 f"a={f['base']}@{f['base']}", "--texts", str(texts), "--n-texts", "16", "--anchors", "8", "--steps", "3",
                 "--png", str(tmp_path / "fp.png"), "--save-extractor", str(tmp_path / "ex")]) == 0
    assert (tmp_path / "fp.png").is_file()
    assert main(["--quiet", "transfer", "fingerprint", f"a={f['expert']}", f"b={f['target']}", "--texts", str(texts),
                 "--n-texts", "16", "--extractor", str(tmp_path / "ex")]) == 2  # the saved extractor needs the bases
    assert "no base activations" in said(capsys)
    assert main(["--quiet", "transfer", "fingerprint", f"a={f['expert']}@{f['base']}", f"b={f['target']}", "--texts",
                 str(texts), "--n-texts", "16"]) == 2
    assert "some models have an @BASE" in said(capsys)
