"""Every module imports without the heavy extras; the client never pulls in torch."""

from support import run_without_heavy_imports as run


def test_client_works_without_torch_or_onnx():
    proc = run("""
        import numpy as np
        import client, client.api, client.overlay, client.preprocess, client.postprocess, client.__main__
        from client.preprocess import letterbox
        from client.postprocess import paste_masks
        canvas, box = letterbox(np.zeros((30, 40, 3), np.uint8), 64, 64)
        paste_masks(np.ones((1, 28, 28), np.float32), np.array([[1, 1, 9, 9]], np.float32), 30, 40)
        import tritonclient.grpc, tritonclient.http
        assert not any(m.split(".")[0] in {"torch", "onnxruntime"} for m in sys.modules)
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_every_module_imports_without_heavy_extras():
    proc = run("""
        import importlib, pkgutil
        for package in ("export", "client", "serve"):
            mod = importlib.import_module(package)
            for info in pkgutil.walk_packages(mod.__path__, package + "."):
                if info.name.endswith("local_backend.model"):
                    continue  # runs inside Triton's python backend only
                importlib.import_module(info.name)
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_help_works_on_a_cpu_machine_without_extras():
    for args in (["export", "--help"], ["export", "list"], ["export", "build-engine", "--help"],
                 ["export", "verify", "--help"], ["client", "--help"], ["client", "segment", "--help"],
                 ["serve", "--help"]):
        proc = run(f"import runpy, sys; sys.argv = {['x', *args[1:]]!r}; runpy.run_module({args[0]!r}, "
                   "run_name='__main__')")
        assert proc.returncode == 0, (args, proc.stderr)
