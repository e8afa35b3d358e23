"""`python -m export import --help` works on a CPU machine without the heavy extras (no onnx, no torch)."""

from test_imports import run


def test_import_help_needs_no_heavy_extras():
    proc = run("import runpy, sys; sys.argv = ['x', 'import', '--help']; runpy.run_module('export', "
               "run_name='__main__')")
    assert proc.returncode == 0, proc.stderr
    assert "one float32/float16 NCHW image input [N, 3, H, W]" in proc.stdout.replace("\n", " ")
