"""Serving-overhead benchmark (a script, not a test): what the served path costs against the in-process limit.

    python bench/serving_overhead.py --repository model_repository            # every model in the repository
    python bench/serving_overhead.py --models deeplabv3_mobilenet --seconds 5 --json bench-out/overhead.json

For every model, in one run on one machine with one thread budget (ONNX Runtime's intra-op threads = the cores this
process may use, sequential execution, as the tuned local backend does with one instance):

(a) in-process ONNX Runtime on the served ``model.onnx``: img/s at batch 1 and at each batch up to 4 (the best);
(b) the local Triton serving the same file, measured by the real perf_analyzer at several concurrencies, for each
    serving variant: ``baseline`` (the pre-tuning settings: the spec's 2 ms queue delay on CPU, ONNX Runtime's default
    threads, idle workers spinning) and ``tuned`` (the configs ``python -m export`` writes now: no delay on CPU, idle
    workers sleep), optionally ``spin`` (tuned but spinning) and ``2inst`` (tuned, two instances sharing the
    cores); in-process is measured with spinning on and off and the faster counts as the limit; ratios served /
    in-process at
    concurrency 1 (vs batch 1) and at the best concurrency (vs the best batch), goal >= 0.95;
(c) the client's own cost for a 1920x1080 JPEG and a 512x512 PNG: decode, letterbox, post-processing of a real
    served answer; its share of end-to-end latency at concurrency 1;
(d) bytes on the wire per request (uint8 in, the model's outputs measured as gRPC response bytes) against float32
    in / float32 logits out.

Timings on a shared machine are noisy: the ratios come from measurements taken side by side in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.api import Segmenter  # noqa: E402
from client.preprocess import letterbox, load_image, prepare  # noqa: E402
from client.results import detections_to_original, segmentation_from_outputs  # noqa: E402
from export.config import ServingOptions, config_proto, queue_delay_us  # noqa: E402
from export.metadata import SPEC_KEY  # noqa: E402
from export.spec import ModelSpec  # noqa: E402
from loadtest.analyzer import Measurement, find_perf_analyzer  # noqa: E402
from loadtest.inputs import sample_photos  # noqa: E402
from loadtest.sweep import Plan, run_sweep  # noqa: E402
from loadtest.target import probe  # noqa: E402

LOCAL_BACKEND = ROOT / "export" / "local_backend" / "model.py"
VARIANTS = ("baseline", "tuned", "spin", "2inst")  # the first two run by default


def cores() -> int:
    return len(os.sched_getaffinity(0))


# -- (a) in-process ONNX Runtime ------------------------------------------------------------------------------------
def session(onnx_path: Path, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def spec_of(sess) -> ModelSpec:
    return ModelSpec.from_json(sess.get_modelmeta().custom_metadata_map[SPEC_KEY])


def images_per_second(sess, canvas: np.ndarray, batch: int, seconds: float) -> tuple[float, float]:
    """(images per second of wall time, CPU seconds per image): the second survives a machine shared with others."""
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(np.repeat(canvas[None], batch, axis=0))}
    sess.run(None, feed)  # warm-up
    runs, started, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        sess.run(None, feed)
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and runs >= 2:
            return runs * batch / elapsed, (time.process_time() - cpu) / (runs * batch)


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (Triton and its python stubs)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        stats[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo += children.get(p, [])
    return total


# -- (b) the served variants -----------------------------------------------------------------------------------------
def variant_config(spec: ModelSpec, variant: str) -> str:
    """config.pbtxt text of ``spec`` for the local target, as exported now (tuned) or with the pre-tuning settings."""
    from google.protobuf import text_format

    options = ServingOptions.for_target("local")
    proto = config_proto(spec, options)
    if variant == "baseline":
        if spec.max_batch_size > 1:
            proto.dynamic_batching.max_queue_delay_microseconds = spec.max_queue_delay_us
        proto.parameters["segserve.ort_intra_op_threads"].string_value = "0"  # ONNX Runtime's own default
        proto.parameters["segserve.ort_allow_spinning"].string_value = "1"  # ONNX Runtime's own default
    elif variant == "spin":  # tuned, but ONNX Runtime's idle workers spin (its default)
        proto.parameters["segserve.ort_allow_spinning"].string_value = "1"
    elif variant == "2inst":  # two instances, the cores shared out (one intra-op thread each on 2 cores)
        proto.instance_group[0].count = 2
    elif variant != "tuned":
        raise SystemExit(f"error: unknown variant `{variant}`. Available: {', '.join(VARIANTS)}.")
    return text_format.MessageToString(proto)


def build_repository(source: Path, models: dict[str, ModelSpec], variant: str, dest: Path) -> Path:
    for name, spec in models.items():
        version = dest / name / "1"
        version.mkdir(parents=True)
        os.link(source / name / "1" / "model.onnx", version / "model.onnx")
        shutil.copy(LOCAL_BACKEND, version / "model.py")
        shutil.copy(source / name / "labels.txt", dest / name / "labels.txt")
        (dest / name / "config.pbtxt").write_text(variant_config(spec, variant))
    return dest


# -- (c) client cost (the images and the timer of issue #10's bench/client_bench.py) ------------------------------
def client_images() -> dict[str, bytes]:
    sys.path.insert(0, str(ROOT / "bench"))
    from client_bench import photo_1080p, png_512

    jpeg, _ = photo_1080p()
    return {"1920x1080 JPEG": jpeg, "512x512 PNG": png_512(jpeg)}


def client_cost_ms(data: bytes, spec: ModelSpec, outputs: dict[str, np.ndarray], repeats: int = 7) -> dict[str, float]:
    """The client's own work per image, median wall ms (and minimum CPU ms of one thread): decode + letterbox
    (``client.preprocess.prepare``, one step since the decoder scales a JPEG down while decoding) and
    post-processing of a real served answer."""
    from client_bench import timed

    canvas, box, _ = prepare(data, spec.height, spec.width)

    def post():
        if spec.task == "semantic":
            return segmentation_from_outputs(outputs, box, spec.class_names).classes
        return detections_to_original(outputs, box, spec.class_names)

    pre_cpu, pre_wall = timed(lambda: prepare(data, spec.height, spec.width), repeats)
    post_cpu, post_wall = timed(post, repeats)
    return {"decode_letterbox": pre_wall, "postprocess": post_wall, "total": pre_wall + post_wall,
            "cpu_total": pre_cpu + post_cpu}


# -- (d) wire bytes ----------------------------------------------------------------------------------------------------
def float32_bytes(spec: ModelSpec) -> tuple[int, int]:
    """float32 NCHW input and float32 logits out: per-class logits (semantic) or torchvision's full-resolution float
    masks [D, 1, H, W] plus boxes/scores/labels (instance)."""
    pixels = spec.height * spec.width
    inp = 3 * pixels * 4
    if spec.task == "semantic":
        return inp, spec.num_classes * pixels * 4
    d = spec.max_detections
    return inp, d * (4 + 1 + 1) * 4 + d * pixels * 4


# -- (e) gRPC compression ------------------------------------------------------------------------------------------
def compression(payload: bytes, level: int = 6, repeats: int = 3) -> dict[str, float]:
    """gzip (zlib) ratio and median compress + decompress ms of ``payload``; the link speed below which it pays."""
    import zlib

    times, packed = [], b""
    for _ in range(repeats):
        t0 = time.perf_counter()
        packed = zlib.compress(payload, level)
        zlib.decompress(packed)
        times.append(time.perf_counter() - t0)
    cost_s = float(np.median(times))
    saved = len(payload) - len(packed)
    return {"ratio": len(payload) / max(1, len(packed)), "ms": cost_s * 1e3,
            "pays_below_mbit_s": saved * 8 / 1e6 / cost_s if saved > 0 else 0.0}


@dataclass
class Served:
    by_concurrency: dict[int, tuple[float, float]]  # concurrency -> (infer/s, p50 ms)
    cpu_s_per_request: float  # server CPU (Triton + stubs) per request over the whole sweep

    @property
    def best(self) -> tuple[int, float]:
        c = max(self.by_concurrency, key=lambda k: self.by_concurrency[k][0])
        return c, self.by_concurrency[c][0]


def levels_for(spec: ModelSpec, concurrency: tuple[int, ...], latency_ms: float) -> tuple[int, ...]:
    """The concurrency levels worth their time: a model slower than a second per image gets 1 and 2 (just 1 when
    it does not batch: with one instance more requests in flight only queue), each window ~4 requests long."""
    if latency_ms <= 1000:
        return concurrency
    return (1, 2) if spec.max_batch_size > 1 else (1,)


def serve_and_measure(repo: Path, models: dict[str, ModelSpec], variant: str, concurrency: tuple[int, ...],
                      inproc_latency_ms: dict[str, float], out: Path, photos: list[Path], stability: int,
                      want_answers: bool) -> tuple[dict[str, Served], dict[str, tuple[dict, tuple[int, int]]]]:
    from serve.server import ServerConfig, TritonServer

    config = ServerConfig.on_free_ports(repo)
    tool = find_perf_analyzer()
    served, answers = {}, {}
    with TritonServer(config, log_path=out / f"tritonserver-{variant}.log") as server:
        server.wait_ready(900)
        for name, spec in models.items():
            plan = Plan(concurrency=levels_for(spec, concurrency, inproc_latency_ms[name]), shared_memory="none",
                        measurement=Measurement(int(max(5000, 4 * inproc_latency_ms[name])), stability, 3))
            cpu = process_tree_cpu_s(server.process.pid)
            outcome = run_sweep(probe(server.grpc_url, name), plan, tool, out / variant, photos,
                                progress=lambda *a, **k: None)
            cpu = process_tree_cpu_s(server.process.pid) - cpu
            if outcome.failed_requests:
                raise SystemExit(f"error: {outcome.failed_requests} failed requests on `{name}` ({variant})")
            served[name] = Served({int(r.level): (r.throughput, r.p50_ms) for r in outcome.rows},
                                  cpu / max(1, outcome.succeeded_requests))
            print(f"  {variant:<8} {name:<20} " + "  ".join(f"c={c}: {t:.2f}/s p50 {p:.0f} ms"
                                                          for c, (t, p) in served[name].by_concurrency.items())
                  + f"  server CPU {served[name].cpu_s_per_request * 1e3:.0f} ms/request", flush=True)
            if want_answers:
                with Segmenter(server.grpc_url, name) as seg:
                    canvas, _ = seg.prepare(photos[0])
                    outputs = seg.infer(canvas[None])
                    answers[name] = (outputs, seg.last_wire_bytes)
    return served, answers


def main(argv: list[str] | None = None) -> int:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the server stops, temporary repos go
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", type=Path, default=ROOT / "model_repository",
                   help="a repository exported with --target local (default: %(default)s)")
    p.add_argument("--models", nargs="*", help="models to measure (default: every model in the repository)")
    p.add_argument("--concurrency", default="1,2,4", help="perf_analyzer concurrencies (default: %(default)s)")
    p.add_argument("--variants", default="baseline,tuned",
                   help=f"serving variants, from {', '.join(VARIANTS)} (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds per in-process measurement")
    p.add_argument("--stability", type=int, default=100,
                   help="perf_analyzer stability percent (default: 100, i.e. three windows of at least 5 s or 4 "
                        "requests, averaged: a stability check cannot pass on a shared machine)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-out", help="CSV/PNG/log folder (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    variants = tuple(v for v in args.variants.split(",") if v)
    names = args.models or sorted(d.name for d in args.repository.iterdir() if (d / "1" / "model.onnx").is_file())
    if not names:
        raise SystemExit(f"error: no exported models in {args.repository}: python -m export ... --target local")
    photos = sample_photos()
    print(f"serving-overhead benchmark: {', '.join(names)}; {cores()} cores; variants {', '.join(variants)}",
          flush=True)

    specs, inproc, inproc_cpu = {}, {}, {}
    for name in names:
        sess = session(args.repository / name / "1" / "model.onnx")
        spec = specs[name] = spec_of(sess)
        canvas, _ = letterbox(load_image(photos[0]), spec.height, spec.width)
        measured = {}
        for spinning in (True, False):  # the limit: whichever setting is faster in-process
            if not spinning:
                sess = session(args.repository / name / "1" / "model.onnx", spinning=False)
            run = {1: images_per_second(sess, canvas, 1, args.seconds)}
            for b in (2, 4) if run[1][0] > 1 else (2,):  # a slow model: batch 2 shows the trend
                if b <= spec.max_batch_size:
                    run[b] = images_per_second(sess, canvas, b, args.seconds)
            for b, m in run.items():
                measured[b] = max(measured.get(b, m), m)
        inproc[name] = rates = {b: m[0] for b, m in measured.items()}
        inproc_cpu[name] = measured[1][1]
        print(f"  in-process {name:<20} " + "  ".join(f"b{b}: {r:.2f} img/s" for b, r in rates.items())
              + f"  CPU {inproc_cpu[name] * 1e3:.0f} ms/image at b1", flush=True)
        del sess
    latency = {n: 1e3 / inproc[n][1] for n in names}

    results = {n: {"spec": {"task": specs[n].task, "size": [specs[n].height, specs[n].width],
                            "max_batch_size": specs[n].max_batch_size},
                   "in_process": {str(b): r for b, r in inproc[n].items()},
                   "in_process_cpu_ms_per_image": inproc_cpu[n] * 1e3, "served": {}} for n in names}
    answers = {}
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix=f"overhead-{variant}-", dir=args.repository.parent) as tmp:
            repo = build_repository(args.repository, specs, variant, Path(tmp) / "repo")
            served, got = serve_and_measure(repo, specs, variant, concurrency, latency, args.out, photos,
                                            args.stability, want_answers=not answers)
            answers = answers or got
        for n in names:
            s = served[n]
            best_b = max(inproc[n], key=inproc[n].get)
            best_c, best_t = s.best
            results[n]["served"][variant] = {
                "by_concurrency": {str(c): {"infer_per_s": t, "p50_ms": p} for c, (t, p) in s.by_concurrency.items()},
                "c1_ratio": s.by_concurrency[1][0] / inproc[n][1],
                "best_ratio": best_t / inproc[n][best_b], "best_concurrency": best_c, "best_batch": best_b,
                "server_cpu_ms_per_request": s.cpu_s_per_request * 1e3,
                "cpu_ratio": inproc_cpu[n] / s.cpu_s_per_request,
                "queue_delay_us": (specs[n].max_queue_delay_us if specs[n].max_batch_size > 1 else 0)
                if variant == "baseline" else queue_delay_us(specs[n], ServingOptions.for_target("local"))}

    pictures = client_images()
    for n in names:
        outputs, (sent, received) = answers[n]
        f_in, f_out = float32_bytes(specs[n])
        c1_ms = results[n]["served"]["tuned" if "tuned" in variants else variants[-1]]["by_concurrency"]["1"]["p50_ms"]
        results[n]["client"] = {label: client_cost_ms(data, specs[n], outputs) for label, data in pictures.items()}
        for label, cost in results[n]["client"].items():
            cost["share_of_end_to_end"] = cost["total"] / (cost["total"] + c1_ms)
        results[n]["wire"] = {"request_bytes": sent, "response_bytes": received, "float32_request_bytes": f_in,
                              "float32_response_bytes": f_out, "reduction": (f_in + f_out) / (sent + received)}
        canvas, _ = letterbox(load_image(photos[0]), specs[n].height, specs[n].width)
        results[n]["gzip"] = {"request": compression(canvas.tobytes()),
                              "response": compression(b"".join(np.ascontiguousarray(v).tobytes()
                                                               for v in outputs.values()))}

    print_report(results, variants)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cores": cores(), "variants": variants, "models": results}, indent=1))
        print(f"results: {args.json}")
    return 0


def print_report(results: dict, variants: tuple[str, ...]) -> None:
    print("\nserved / in-process (goal >= 0.95): throughput ratios (wall clock, noisy on a shared machine) and the CPU "
          "ratio (in-process CPU per image at batch 1 / server CPU per request, Triton + stub processes)")
    print(f"{'model':<20} {'variant':<9} {'in-proc b1':>10} {'best b':>7} {'served c1':>9} {'best c':>7} "
          f"{'c1 ratio':>8} {'best ratio':>10} {'CPU ratio':>9}")
    for n, r in results.items():
        for v in variants:
            s = r["served"][v]
            best_b = s["best_batch"]
            print(f"{n:<20} {v:<9} {r['in_process']['1']:10.2f} {r['in_process'][str(best_b)]:7.2f} "
                  f"{s['by_concurrency']['1']['infer_per_s']:9.2f} "
                  f"{s['by_concurrency'][str(s['best_concurrency'])]['infer_per_s']:7.2f} "
                  f"{s['c1_ratio']:8.3f} {s['best_ratio']:10.3f} {s['cpu_ratio']:9.3f}   (best: batch {best_b}, c="
                  f"{s['best_concurrency']}; queue delay {s['queue_delay_us']} us; server CPU "
                  f"{s['server_cpu_ms_per_request']:.0f} vs {r['in_process_cpu_ms_per_image']:.0f} ms in-process)")
    print("\nclient cost (decode + letterbox, post-processing: median wall ms; min CPU ms of one thread) and its share "
          "of end-to-end latency at c=1")
    for n, r in results.items():
        parts = [f"{label}: {c['decode_letterbox']:.1f} + {c['postprocess']:.1f} = {c['total']:.1f} ms "
                 f"(CPU {c['cpu_total']:.1f}; {c['share_of_end_to_end']:.1%})" for label, c in r["client"].items()]
        print(f"{n:<20} " + "; ".join(parts))
    print("\nbytes on the wire per request: uint8 in + served outputs vs float32 in + float32 logits out")
    for n, r in results.items():
        w = r["wire"]
        print(f"{n:<20} {w['request_bytes']:>10,} + {w['response_bytes']:>9,} B vs {w['float32_request_bytes']:>10,} "
              f"+ {w['float32_response_bytes']:>12,} B: {w['reduction']:.1f}x less")
    print("\ngzip (level 6) on the wire: ratio, compress + decompress ms, and the link speed below which it pays")
    for n, r in results.items():
        print(f"{n:<20} " + "; ".join(f"{k}: {g['ratio']:.1f}x in {g['ms']:.1f} ms, pays below "
                                       f"{g['pays_below_mbit_s']:,.0f} Mbit/s" for k, g in r["gzip"].items()))


if __name__ == "__main__":
    sys.exit(main())
