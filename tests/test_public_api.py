"""Everything graftkit/__init__ promises is importable, and `import graftkit` stays cheap."""

import subprocess
import sys

import graftkit


def test_every_exported_name_resolves():
    for name in graftkit._EXPORTS:
        assert getattr(graftkit, name) is not None, name


def test_import_graftkit_does_not_import_torch():
    code = "import sys, graftkit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
