"""`python -m export import --help` works on a CPU machine without the heavy extras (no onnx, no torch)."""

import subprocess
import sys

BLOCK_HEAVY = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "tensorrt"}:
            raise ImportError(f"blocked heavy import: {name}")
sys.meta_path.insert(0, Block())
sys.argv = ["x", "import", "--help"]
runpy.run_module("export", run_name="__main__")
"""


def test_import_help_needs_no_heavy_extras():
    proc = subprocess.run([sys.executable, "-c", BLOCK_HEAVY], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "one float32/float16 NCHW image input [N, 3, H, W]" in proc.stdout.replace("\n", " ")


def test_import_checks_serving_options_like_export(capsys):
    """Both commands share one definition of the serving options (export/cli_options.py) and its range check."""
    from export.__main__ import main

    assert main(["import", "whatever.onnx", "--name", "mine", "--instances", "0"]) == 1
    assert capsys.readouterr().err == "error: Bad --instances 0: use 1..64.\n"
