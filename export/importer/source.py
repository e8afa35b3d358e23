"""Read a user's ONNX file and check that it fits the import: what the graph says, and what it needs to be told."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.assets import sha256
from export.errors import ExportError, require

if TYPE_CHECKING:
    import onnx

# ONNX TensorProto element types the image input may have (the normalised image is cast to it).
FLOAT_INPUTS = {1: "float32", 10: "float16"}
MIN_OPSET = 11  # Resize/ArgMax/Reduce* forms the wrapper emits exist from opset 11 on


@dataclass(frozen=True)
class SourceGraph:
    """What the import knows about the user's network after reading and checking it."""

    path: Path
    sha256: str
    input_name: str
    input_elem: int  # TensorProto element type (FLOAT or FLOAT16)
    batch: int | None  # fixed batch size, None when symbolic
    height: int
    width: int
    output_name: str
    channels: int  # C of the chosen output: 1 = a foreground map
    out_height: int
    out_width: int
    opset: int


def _dims(value) -> list[int | str]:
    """The declared dims of a graph value: ints, names of symbolic dims, or '?' for unknown ones."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _describe(value) -> str:
    onnx = require("onnx")
    elem = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
    has_shape = value.type.tensor_type.HasField("shape")
    return f"`{value.name}` {elem}{_dims(value) if has_shape else '[unknown rank]'}"


def load(path: Path) -> "onnx.ModelProto":
    onnx = require("onnx")
    if not path.is_file():
        raise ExportError(f"ONNX file `{path}` does not exist.")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise ExportError(f"`{path}` is not a readable ONNX file: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None


def real_inputs(model: "onnx.ModelProto") -> list:
    """Graph inputs that are not initializers (older exporters list the weights as inputs too)."""
    weights = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in weights]


def default_opset(model: "onnx.ModelProto") -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("The ONNX file imports no default-domain opset: not a model the importer can wrap.")


def inspect(path: Path, *, size: tuple[int, int] | None = None, output: str | None = None,
            sha: str | None = None) -> SourceGraph:
    """Check ``path`` fits the import and return its geometry; every misfit is one ExportError naming what was
    found and what is needed. ``size`` is required when the input's height/width are dynamic; ``output`` picks
    the score map among several outputs (default: the first); ``sha``: the file's sha256 when the caller has just
    checked it (not hashed again)."""
    model = load(path)
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise ExportError(f"`{path.name}` uses opset {opset}; import needs opset >= {MIN_OPSET}: convert it with "
                          f"onnx.version_converter.convert_version(model, {MIN_OPSET}).")
    inputs = real_inputs(model)
    if len(inputs) != 1:
        found = ", ".join(_describe(v) for v in inputs) or "none"
        raise ExportError(f"`{path.name}` has {len(inputs)} inputs ({found}); import needs exactly one float NCHW "
                          "image input [N, 3, H, W].")
    (image,) = inputs
    elem = image.type.tensor_type.elem_type
    if elem not in FLOAT_INPUTS:
        raise ExportError(f"`{path.name}` input {_describe(image)} is not float; import needs a float32 or float16 "
                          "NCHW image input [N, 3, H, W] (normalisation runs inside the wrapped graph).")
    dims = _dims(image)
    if len(dims) != 4:
        raise ExportError(f"`{path.name}` input {_describe(image)} has rank {len(dims)}; import needs an NCHW image "
                          "input [N, 3, H, W].")
    if isinstance(dims[1], int) and dims[1] != 3:
        layout = " (it looks NHWC)" if dims[3] == 3 else ""
        raise ExportError(f"`{path.name}` input {_describe(image)} has {dims[1]} channels{layout}; import needs an "
                          "RGB NCHW image input [N, 3, H, W].")
    batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    if batch is not None and batch != 1:
        raise ExportError(f"`{path.name}` input {_describe(image)} has a fixed batch of {batch}; import needs a "
                          "batch dim that is 1 or dynamic.")
    fixed = [d if isinstance(d, int) and d > 0 else None for d in dims[2:]]
    if None in fixed:
        if size is None:
            raise ExportError(f"`{path.name}` input {_describe(image)} has a dynamic height/width: pass the served "
                              "input size with --size H [W].")
        height, width = size
    else:
        height, width = fixed
        if size is not None and tuple(size) != (height, width):
            raise ExportError(f"--size {size[0]} {size[1]} does not fit `{path.name}`: its input {_describe(image)} "
                              f"is fixed at {height}x{width}.")
    for value in (height, width):
        if value < 16 or value > 8192:
            raise ExportError(f"Bad input size {height}x{width} for `{path.name}`: use 16..8192 pixels a side.")

    outputs = list(model.graph.output)
    names = [o.name for o in outputs]
    if output is None:
        chosen = outputs[0]
    elif output in names:
        chosen = outputs[names.index(output)]
    else:
        raise ExportError(f"`{path.name}` has no output `{output}`; its outputs: {', '.join(names)}.")
    out_dims = _dims(chosen) if chosen.type.tensor_type.HasField("shape") else None
    if out_dims is not None and len(out_dims) != 4:
        raise ExportError(f"`{path.name}` output {_describe(chosen)} has rank {len(out_dims)}; import needs per-class "
                          "scores [N, C, H, W] or one foreground map [N, 1, H, W].")
    if None not in fixed and out_dims is not None and all(isinstance(d, int) and d > 0 for d in out_dims) \
            and chosen.type.tensor_type.elem_type in FLOAT_INPUTS:
        got = np.empty(out_dims, dtype=FLOAT_INPUTS[chosen.type.tensor_type.elem_type])  # all static: no probe
    else:
        # The declared dims are symbolic: one run at the served size says what the network really returns.
        probe = np.zeros((1, 3, height, width), dtype=np.float16 if elem == 10 else np.float32)
        try:
            got = _run_once(path, image.name, chosen.name, probe)
        except Exception as exc:
            raise ExportError(f"`{path.name}` does not run at {height}x{width} in ONNX Runtime: "
                              f"{str(exc).strip().splitlines()[0][:300]}") from None
    if got.ndim != 4:
        raise ExportError(f"`{path.name}` output `{chosen.name}` is {got.dtype}{list(got.shape)} (rank {got.ndim}); "
                          "import needs per-class scores [N, C, H, W] or one foreground map [N, 1, H, W].")
    if not np.issubdtype(got.dtype, np.floating):
        raise ExportError(f"`{path.name}` output `{chosen.name}` is {got.dtype}{list(got.shape)}; import needs float "
                          "scores [N, C, H, W] or a float foreground map [N, 1, H, W], not class ids.")
    channels, out_h, out_w = (int(d) for d in got.shape[1:])
    if channels > 65535:
        raise ExportError(f"`{path.name}` output `{chosen.name}` has {channels} channels; at most 65535 classes.")
    return SourceGraph(path, sha or sha256(path), image.name, elem, batch, height, width, chosen.name, channels, out_h, out_w,
                       opset)


def _run_once(path: Path, input_name: str, output_name: str, array: np.ndarray) -> np.ndarray:
    from export.parity import ort_session

    return ort_session(path).run([output_name], {input_name: array})[0]
