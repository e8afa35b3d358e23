"""The export pipeline for one model: build -> ONNX -> parity check -> [TensorRT engine] -> model repository."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from export.config import ServingOptions
from export.layout import DEFAULT_CACHE_DIR, DEFAULT_WORK_DIR, onnx_path_for
from export.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    spec: ModelSpec
    model_dir: Path
    onnx_path: Path
    onnx_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    parity: str = "skipped"

    @property
    def times(self) -> str:
        """The step times, e.g. ``build 0.3s, onnx 9.2s, parity 16.9s``."""
        return ", ".join(f"{step} {s:.1f}s" for step, s in self.seconds.items())


@contextmanager
def timed(seconds: dict[str, float], step: str):
    """Record how long the ``with`` block took as ``seconds[step]``."""
    started = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - started


def build_engine_for(onnx_path: Path, spec: ModelSpec, precision: str, *, release: str | None,
                     cache_dir: Path | None, work_dir: Path) -> Path:
    """The ``tensorrt`` target's engine for ``onnx_path`` (the FP16 or FP32 graph it says it is), built for the
    Triton of NGC ``release`` or taken from the engine cache (default: WORK_DIR/engines)."""
    from export.tensorrt.build import BuildOptions, build_engine

    return build_engine(onnx_path, spec=spec, precision=precision, options=BuildOptions(release=release),
                        cache_dir=cache_dir or work_dir / DEFAULT_CACHE_DIR.name).plan_path


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the export extra; without it, no bar
        return None
    # disable=None: tqdm draws only on a terminal, so logs and CI output stay clean.
    return tqdm(total=total, desc=desc, unit="step", disable=None if enabled else True, leave=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} {bar:20} {elapsed} {postfix}")


def export_model(spec: ModelSpec, options: ServingOptions, repository: Path, *, weights: str = "none",
                 work_dir: Path = DEFAULT_WORK_DIR, parity: bool = True, progress: bool = True,
                 precision: str | None = None, cache_dir: Path | None = None, plan: Path | None = None,
                 target_gpu=None, release: str | None = None) -> ExportResult:
    """Export ``spec`` for ``options.target`` into ``repository`` and return what was done and how long it took."""
    from export.importer.builtin import IMPORTED, export_builtin

    if spec.name in IMPORTED:  # a trained ONNX file (u2netp): exported through the import path, no PyTorch
        return export_builtin(spec, options, repository, weights=weights, work_dir=work_dir, parity=parity,
                              precision=precision, cache_dir=cache_dir, plan=plan, target_gpu=target_gpu,
                              release=release)
    from export.models import build_served_module
    from export.onnx_export import example_input, export_onnx
    from export.precision import default_precision
    from export.repository import write_model

    import torch

    torch.manual_seed(0)  # reproducible random init for --weights none
    precision = precision or default_precision(options.target, options.device)
    steps = 4 + (options.target == "tensorrt" and plan is None)  # a --plan is not built here
    bar = _progress(steps, f"export {spec.name}", progress)
    seconds: dict[str, float] = {}

    @contextmanager
    def stage(name: str):
        """A timed step (``timed``) that names itself on the progress bar and advances it when done."""
        if bar is not None:
            bar.set_postfix_str(name)
        with timed(seconds, name):
            yield
        if bar is not None:
            bar.update(1)

    try:
        with stage("build"):
            module = build_served_module(spec, weights)

        with stage("onnx"):
            onnx_path = export_onnx(module, spec, onnx_path_for(work_dir, spec.name), precision=precision)

        summary = "skipped"
        with stage("parity"):
            if parity:
                from export.parity import check_parity
                from export.precision import check_fp16

                batch = 2 if spec.max_batch_size > 1 else 1
                images = example_input(spec, batch, seed=1).numpy()
                if precision == "fp16":
                    summary = check_fp16(module, spec, onnx_path, images, enforce=weights != "none").summary
                else:
                    summary = check_parity(module, spec, onnx_path, images).summary

        plan_path = plan
        if options.target == "tensorrt" and plan_path is None:
            with stage("tensorrt"):
                plan_path = build_engine_for(onnx_path, spec, precision, release=release, cache_dir=cache_dir,
                                             work_dir=work_dir)

        with stage("repository"):
            model_dir = write_model(spec, options, repository, onnx_path=onnx_path, plan_path=plan_path,
                                    target_gpu=target_gpu)
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(spec, model_dir, onnx_path, onnx_path.stat().st_size, seconds, summary)
