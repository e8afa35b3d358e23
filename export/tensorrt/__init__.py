"""Everything TensorRT: engine builds, their sidecars and cache, the served ``tensorrt_plan`` directories
``build-engine`` writes, the accuracy check on a GPU, and the static ONNX checks and graph rewrites that need no
TensorRT at all.

Written against the TensorRT 10/11 Python API (``tensorrt``), which is imported only inside the functions that call
it: every module here imports on a CPU machine, and all but ``build.build_serialized`` and ``verify.run_engine`` run
there.

- ``gpu``: which GPU (and MIG profile) an engine is built on;
- ``sidecar``: what an engine was built from and for, and the checks that refuse a mismatched engine;
- ``cache``: the engine cache (key, file lock, atomic writes) shared by pods;
- ``build``: ONNX -> serialized strongly typed engine (the TensorRT API calls) and the cached build around it;
- ``served``: ``build-engine``'s output, a complete served ``tensorrt_plan`` model directory;
- ``verify``: an engine vs ONNX Runtime on the same images;
- ``static_check`` + ``data/``: every ONNX node against onnx-tensorrt's operator table of the target TensorRT (tables
  10.1, 10.16, 11.1; a release whose TensorRT is unverified, like the default NGC 26.07, gets the newest);
- ``rewrite``: graph rewrites that make exported graphs parse (UINT8 boundary, NonZero input);
- ``cli``: ``python -m export build-engine`` and ``python -m export verify``.
"""
