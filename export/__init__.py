"""segserve export: PyTorch segmentation models -> ONNX / TensorRT -> a Triton model repository.

Heavy packages (torch, torchvision, onnx, onnxruntime, tensorrt) are imported inside the functions that use them,
so ``import export`` and ``python -m export --help`` work on any machine.
"""

from export.errors import ExportError
from export.spec import SPECS, ModelSpec, TensorSpec, get_spec

__all__ = ["SPECS", "ExportError", "ModelSpec", "TensorSpec", "get_spec"]
