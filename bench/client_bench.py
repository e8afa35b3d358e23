"""Client benchmark (issue #10): per-stage costs before/after, Mask R-CNN post-processing and result size, and
``Segmenter.map`` throughput against perf_analyzer at the same concurrency on the same server.

    python bench/client_bench.py                                   # stages + Mask R-CNN (no server needed)
    python bench/client_bench.py --url 127.0.0.1:8001 --model deeplabv3_mobilenet --concurrency 4
    python bench/client_bench.py --repository model_repository     # starts the local Triton itself

"Before" is a verbatim copy of the client's functions before issue #10 (commit 221311b), run side by side in the
same process, so machine load affects both alike. Stage times are the minimum and median of --repeats runs on
one thread (BLAS/OpenMP pinned to 1 thread before numpy loads), as the thread's CPU time (min) and wall time
(median): on a shared machine the CPU time is the one-core cost. Targets: decode + pre + post <= 5 ms for a 1080p
JPEG (semantic), Mask R-CNN post of 100 detections at 1080p <= 10 ms, map >= 0.9 x perf_analyzer. The decode-by-scale
table shows what decoding alone costs (every DCT scale still entropy-decodes the whole file); with opencv importable
it also times opencv's resizes against Pillow's, the measurement behind keeping Pillow.
The 1080p JPEG is matplotlib's sample photo grace_hopper.jpg (a real photo) scaled to cover 1920x1080 with a
little sensor-like grain (the upscale alone would be unrealistically smooth), saved at quality 90; without
matplotlib, a textured synthetic picture.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.preprocess import _canvas, _decode, fit, open_image, oriented_size  # noqa: E402
from client.results import detections_to_original, segmentation_from_outputs  # noqa: E402


# -- before: the client's functions at commit 221311b, verbatim ------------------------------------------------
OLD_PAD = (124, 116, 104)


def old_load_image(image):
    pil = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
    pil.load()
    pil = ImageOps.exif_transpose(pil)
    return np.asarray(pil.convert("RGB"), dtype=np.uint8)


def old_letterbox(rgb, height, width):
    h, w = rgb.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = OLD_PAD
    resized = rgb if (nh, nw) == (h, w) else np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, fit(h, w, height, width)


def old_nearest_index(out_size, in_size):
    return np.minimum(((np.arange(out_size) + 0.5) * (in_size / out_size)).astype(np.int64), in_size - 1)


def old_unletterbox_mask(mask, box):
    crop = mask[box.pad_top:box.pad_top + box.resized_height, box.pad_left:box.pad_left + box.resized_width]
    rows = old_nearest_index(box.original_height, box.resized_height)
    cols = old_nearest_index(box.original_width, box.resized_width)
    return crop[rows[:, None], cols[None, :]]


def old_classes(mask):
    ids, counts = np.unique(mask, return_counts=True)
    return sorted(((int(i), c / mask.size) for i, c in zip(ids, counts)), key=lambda item: -item[1])


def old_bilinear_matrix(out_size, in_size):
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    weights = np.zeros((out_size, in_size), dtype=np.float32)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, i0), 1.0 - frac)
    np.add.at(weights, (rows, i1), frac)
    return weights


def old_paste_masks(masks, boxes, height, width, threshold=0.5):
    n = len(masks)
    out = np.zeros((n, height, width), dtype=bool)
    if n == 0:
        return out
    m = masks.shape[-1]
    padded = np.zeros((n, m + 2, m + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = masks
    scale = (m + 2) / m
    cx, cy = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    hw, hh = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    grown = np.trunc(np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)).astype(np.int64)
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in grown[i])
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        ix0, ix1 = max(x0, 0), min(x1 + 1, width)
        iy0, iy1 = max(y0, 0), min(y1 + 1, height)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        ry = old_bilinear_matrix(h, m + 2)[iy0 - y0:iy1 - y0]
        rx = old_bilinear_matrix(w, m + 2)[ix0 - x0:ix1 - x0]
        out[i, iy0:iy1, ix0:ix1] = (ry @ padded[i] @ rx.T) > threshold
    return out


# -- inputs -------------------------------------------------------------------------------------------------
def photo_1080p() -> tuple[bytes, str]:
    rng = np.random.default_rng(0)
    try:
        import matplotlib.cbook as cbook

        src = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
        s = max(1920 / src.width, 1080 / src.height)
        big = src.resize((round(src.width * s), round(src.height * s)), Image.BICUBIC)
        left, top = (big.width - 1920) // 2, (big.height - 1080) // 2
        pixels = np.asarray(big.crop((left, top, left + 1920, top + 1080))).astype(np.float32)
        what = "grace_hopper.jpg (matplotlib sample photo) scaled to 1920x1080 + grain sigma 4, quality 90"
    except ImportError:
        y, x = np.mgrid[0:1080, 0:1920]
        pixels = np.stack([128 + 90 * np.sin(x / 37.0) * np.cos(y / 23.0), (x * 255 // 1919) * 1.0,
                           ((x // 60 + y // 60) % 2) * 180.0], -1)
        what = "synthetic textured 1920x1080 (matplotlib absent) + grain sigma 4, quality 90"
    pixels += rng.normal(0, 4, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), what


def png_512(jpeg: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("RGB").crop((700, 200, 1212, 712)).save(buffer, format="PNG")
    return buffer.getvalue()


def timed(fn, repeats: int) -> tuple[float, float]:
    """(minimum CPU time of this thread, median wall time) in ms. CPU time is what one core spends, and stays
    meaningful when other processes share the machine (wall times then mostly measure the wait)."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append((time.thread_time() - started_cpu) * 1e3)
        wall.append((time.perf_counter() - started) * 1e3)
    return min(cpu), statistics.median(wall)


# -- stages -------------------------------------------------------------------------------------------------
def client_decode(data: bytes, height: int, width: int):
    """What the client decodes for a ``height`` x ``width`` model input (its JPEG DCT scale), and the letterbox."""
    pil = open_image(data)
    box = fit(*oriented_size(pil), height, width)
    return _decode(pil, "<bytes>", draft_to=(box.resized_width, box.resized_height))[0], box


def stage_costs(data: bytes, label: str, height: int, width: int, repeats: int) -> dict:
    rng = np.random.default_rng(1)
    model_mask = rng.integers(0, 21, (height, width)).astype(np.uint8)
    model_mask[:, : width // 3] = 0  # large uniform regions, as real masks have
    outputs = {"MASK": model_mask[None]}

    def new_decode():
        return client_decode(data, height, width)

    decoded, new_box = new_decode()

    def new_pre():
        rgb = decoded
        if rgb.size != (new_box.resized_width, new_box.resized_height):
            rgb = rgb.resize((new_box.resized_width, new_box.resized_height), Image.BILINEAR)
        return _canvas(np.asarray(rgb, dtype=np.uint8), new_box, height, width)

    full = old_load_image(data)
    _, old_box = old_letterbox(full, height, width)

    def new_post():
        return segmentation_from_outputs(outputs, new_box, ()).classes

    def old_post():
        return old_classes(old_unletterbox_mask(model_mask, old_box))

    rows = {
        "decode": (timed(lambda: old_load_image(data), repeats), timed(new_decode, repeats)),
        "pre (letterbox)": (timed(lambda: old_letterbox(full, height, width), repeats), timed(new_pre, repeats)),
        "post (un-letterbox + classes)": (timed(old_post, repeats), timed(new_post, repeats)),
    }
    print(f"\n{label} -> {height}x{width} model input, one thread, ms (min CPU / median wall of {repeats})")
    print(f"  {'stage':32s} {'before':>17s} {'after':>17s} {'speed-up':>9s}")
    total_old = total_new = 0.0
    for name, ((o_min, o_med), (n_min, n_med)) in rows.items():
        total_old += o_min
        total_new += n_min
        print(f"  {name:32s} {o_min:7.2f} / {o_med:7.2f} {n_min:7.2f} / {n_med:7.2f} {o_min / n_min:8.1f}x")
    print(f"  {'total (min CPU)':32s} {total_old:17.2f} {total_new:17.2f} {total_old / total_new:8.1f}x")
    return {"before": total_old, "after": total_new}


def decode_floor(data: bytes, height: int, width: int, repeats: int) -> None:
    """What decoding alone costs at each JPEG DCT scale: the part of the 5 ms target no client code can remove.
    Every scale still entropy-decodes the whole file (libjpeg-turbo's Huffman decoding), so 1/8 is the floor."""
    client, box = client_decode(data, height, width)  # what the client decodes for this input
    size = (box.resized_width, box.resized_height)
    print(f"\nJPEG decode alone by DCT scale (Pillow {Image.__version__}, libjpeg-turbo), ms (min CPU / median wall)")
    for scale in (1, 2, 4, 8):
        def decode(scale=scale):
            pil = Image.open(io.BytesIO(data))
            pil.draft(None, (pil.width // scale, pil.height // scale))
            pil.load()
            return pil

        cpu, wall = timed(decode, repeats)
        decoded = decode().size
        used = "  <- the client's scale for this model input" if decoded == client.size else ""
        print(f"  1/{scale}  {decoded[0]:4d}x{decoded[1]:<4d} {cpu:7.2f} / {wall:7.2f}{used}")
    try:
        import cv2  # optional: only to show the measurement behind keeping Pillow's resize
    except ImportError:
        return
    cv2.setNumThreads(1)
    half = np.asarray(client)
    ideal = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.BILINEAR)).astype(np.float64)
    print(f"  resize {half.shape[1]}x{half.shape[0]} -> {size[0]}x{size[1]}, ms (min CPU) and PSNR against a "
          "full-scale antialiased resize")
    for name, fn in [("Pillow BILINEAR (used)", lambda: np.asarray(Image.fromarray(half).resize(size, Image.BILINEAR))),
                     ("opencv INTER_AREA", lambda: cv2.resize(half, size, interpolation=cv2.INTER_AREA)),
                     ("opencv INTER_LINEAR", lambda: cv2.resize(half, size, interpolation=cv2.INTER_LINEAR))]:
        mse = ((fn().astype(np.float64) - ideal) ** 2).mean()
        print(f"    {name:24s} {timed(fn, repeats)[0]:6.2f} ms  {10 * np.log10(255 ** 2 / mse):5.1f} dB")


def maskrcnn_post(repeats: int, count: int = 100) -> dict:
    """100 detections at 1080p: boxes log-uniform 20..600 px wide/high (street-photo-like), model frame 800."""
    rng = np.random.default_rng(2)
    box = fit(1080, 1920, 800, 800)
    w = np.exp(rng.uniform(np.log(20), np.log(600), count))
    h = np.exp(rng.uniform(np.log(20), np.log(600), count))
    x0, y0 = rng.uniform(0, 1920 - w), rng.uniform(0, 1080 - h)
    image_boxes = np.stack([x0, y0, x0 + w, y0 + h], 1)
    model_boxes = image_boxes * box.scale + np.array([box.pad_left, box.pad_top] * 2)
    yy, xx = np.mgrid[0:28, 0:28]
    blobs = np.exp(-(((xx - 13.5) / 9) ** 2 + ((yy - 13.5) / 11) ** 2))[None] * rng.uniform(0.7, 1.0, (count, 1, 1))
    outputs = {"BOXES": model_boxes[None].astype(np.float32), "SCORES": rng.random((1, count)).astype(np.float32),
               "LABELS": rng.integers(1, 91, (1, count)), "MASKS": blobs[None].astype(np.float16),
               "NUM_DETECTIONS": np.array([[count]], np.int32)}

    from client.postprocess import unletterbox_boxes

    def old():
        boxes = unletterbox_boxes(outputs["BOXES"][0][:count], box)
        return old_paste_masks(outputs["MASKS"][0][:count].astype(np.float32), boxes, 1080, 1920)

    def new():
        return detections_to_original(outputs, box, ())

    (o_min, o_med), (n_min, n_med) = timed(old, max(3, repeats // 10)), timed(new, repeats)
    old_bytes, result = old().nbytes, new()
    np.testing.assert_array_equal(result.full_masks(), old())  # same masks, only stored compactly
    print(f"\nMask R-CNN post-processing, {count} detections at 1920x1080 (ms, min CPU / median wall; result "
          "bytes)")
    print(f"  before: {o_min:7.2f} / {o_med:7.2f} ms  {old_bytes / 1e6:8.1f} MB (full-frame bool masks)")
    print(f"  after:  {n_min:7.2f} / {n_med:7.2f} ms  {result.nbytes / 1e6:8.2f} MB (masks in their boxes)  "
          f"{o_min / n_min:.1f}x faster, {old_bytes / result.nbytes:.0f}x smaller; full_masks() identical")
    return {"before_ms": o_min, "after_ms": n_min, "before_bytes": old_bytes, "after_bytes": result.nbytes}


# -- map vs perf_analyzer -----------------------------------------------------------------------------------
def run_perf_analyzer(url: str, model: str, concurrency: int, seconds: float) -> float:
    from loadtest.analyzer import find_perf_analyzer
    from loadtest.errors import LoadTestError

    try:
        tool = find_perf_analyzer()
    except LoadTestError as exc:
        sys.exit(f"error: {exc}")
    argv = [str(tool.binary), "-m", model, "-u", url, "-i", "grpc", "--concurrency-range", str(concurrency),
            "--measurement-interval", str(int(seconds * 1000)), "--stability-percentage", "50", "--max-trials", "4"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=tool.env())
    found = re.findall(r"Concurrency: \d+, throughput: ([\d.]+) infer/sec", proc.stdout)
    if proc.returncode != 0 or not found:
        sys.exit(f"error: perf_analyzer failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-800:]}")
    return float(found[-1])


def run_map(url: str, model: str, concurrency: int, jpegs: list[bytes], seconds: float) -> float:
    """Steady state, like perf_analyzer's window: one long map over a cycle of the JPEGs, counted for
    ``seconds`` after a warm-up of 2 x concurrency images."""
    import itertools

    from client import Segmenter

    with Segmenter(url, model, timeout_s=120) as seg:
        results = seg.map(itertools.cycle(jpegs), concurrency=concurrency)
        for _ in range(2 * concurrency):
            next(results)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            next(results)
            done += 1
        elapsed = time.perf_counter() - started
        results.close()
        return done / elapsed


def concurrency_ratio(url: str, model: str, concurrency: int, jpeg: bytes, seconds: float, rounds: int) -> dict:
    # Several distinct real-size JPEGs (crops/flips of the photo re-encoded at 1080p) so nothing is cached.
    base = Image.open(io.BytesIO(jpeg))
    jpegs = []
    for i in range(8):
        picture = ImageOps.mirror(base) if i % 2 else base
        buffer = io.BytesIO()
        picture.rotate(i * 0.5, resample=Image.BILINEAR).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    pa, mp = [], []
    for _ in range(rounds):  # interleaved, so drifting machine load hits both alike
        pa.append(run_perf_analyzer(url, model, concurrency, seconds))
        mp.append(run_map(url, model, concurrency, jpegs, seconds))
    ratio = statistics.mean(mp) / statistics.mean(pa)
    print(f"\nThroughput at concurrency {concurrency} on `{model}` at {url} ({rounds} interleaved rounds):")
    print(f"  perf_analyzer (random uint8 tensors):   {', '.join(f'{v:.2f}' for v in pa)} infer/s")
    print(f"  Segmenter.map (1080p JPEG in, masks out): {', '.join(f'{v:.2f}' for v in mp)} img/s")
    print(f"  ratio map / perf_analyzer: {ratio:.2f} (target >= 0.9)")
    return {"perf_analyzer": pa, "map": mp, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=60, help="timed runs per stage (default: %(default)s)")
    p.add_argument("--url", help="a running Triton's gRPC address: also measure map vs perf_analyzer")
    p.add_argument("--repository", type=Path, help="start the local Triton on this repository for the ratio")
    p.add_argument("--model", default="deeplabv3_mobilenet", help="model for the ratio (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window per run (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved perf_analyzer/map rounds")
    p.add_argument("--height", type=int, default=520, help="model input height for the stage costs")
    p.add_argument("--width", type=int, default=520, help="model input width for the stage costs")
    args = p.parse_args(argv)

    jpeg, what = photo_1080p()
    print(f"1080p JPEG: {what}, {len(jpeg):,} bytes")
    stage_costs(jpeg, "1920x1080 JPEG", args.height, args.width, args.repeats)
    decode_floor(jpeg, args.height, args.width, args.repeats)
    stage_costs(png_512(jpeg), "512x512 PNG", args.height, args.width, args.repeats)
    maskrcnn_post(args.repeats)
    if args.repository or args.url:
        server = None
        url = args.url
        if url is None:
            from serve.server import ServerConfig, TritonServer

            log = Path(tempfile.mkdtemp(prefix="client-bench-")) / "tritonserver.log"
            server = TritonServer(ServerConfig.on_free_ports(args.repository), log_path=log)
            server.start()
            server.wait_ready(600)
            url = server.grpc_url
        try:
            concurrency_ratio(url, args.model, args.concurrency, jpeg, args.seconds, args.rounds)
        finally:
            if server is not None:
                server.stop()
                shutil.rmtree(log.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
