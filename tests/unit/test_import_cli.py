"""`python -m export import --help` works on a CPU machine without the heavy extras (no onnx, no torch)."""

from support import run_without_heavy_imports


def test_import_help_needs_no_heavy_extras():
    proc = run_without_heavy_imports("""
        import runpy, sys
        sys.argv = ["x", "import", "--help"]
        runpy.run_module("export", run_name="__main__")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "one float32/float16 NCHW image input [N, 3, H, W]" in proc.stdout.replace("\n", " ")


def test_import_checks_serving_options_like_export(capsys):
    """Both commands share one definition of the serving options (export/cli_options.py) and its range check."""
    from export.__main__ import main

    assert main(["import", "whatever.onnx", "--name", "mine", "--instances", "0"]) == 1
    assert capsys.readouterr().err == "error: Bad --instances 0: use 1..64.\n"
