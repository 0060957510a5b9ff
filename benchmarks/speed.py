"""Speed-and-scale benchmarks: one command per benchmark, each with a ``--quick`` mode.

    python benchmarks/speed.py embed [--quick] [--n 2000]   # labelaudit vs bare open_clip images/s (ratio)
    python benchmarks/speed.py cache [--quick] [--n 2000]   # cold vs warm (cached) labelaudit.audit() (ratio)
    python benchmarks/speed.py scale [--quick] [--with-1m]  # time + peak RSS of each method vs N and classes

Results go to benchmarks/results/speed_<name>.json and .md (``--quick``: speed_<name>-quick.*, not
committed); ``scale`` also draws speed_scale.png (time and peak RSS vs N). Every command pins the
thread count (``--threads``, default 2) through OMP_NUM_THREADS and torch.set_num_threads for all sides
of a comparison. Images are the 10k CIFAR-10 JPEGs in ../shared/assets/cifar10n/images; the model is
open_clip ViT-B-32 with random weights (``pretrained="random"``: same compute as the real weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # results_io, also when a test loads this file by path
from results_io import write_results  # noqa: E402

ASSETS = REPO.parent / "shared" / "assets"
CIFAR_IMAGES = ASSETS / "cifar10n" / "images"
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_MODEL = "ViT-B-32"
METHODS = ("deft", "confident", "zeroshot", "knn", "consensus", "stage", "estimate")
# "stage" is the whole scoring stage of an audit in one process (labelaudit.pipeline.score_methods + the
# consensus): its peak RSS is the figure that must stay under 4 GB at 1M x 512. "estimate" runs that stage
# untimed and times the calibrated error-rate estimate on what it gathered, as an audit's estimate stage
# does: issue #14 allows the calibration at most the scoring stage's own time.
STAGE_METHODS = ("deft", "confident", "zeroshot", "knn")


# ---- shared helpers ------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """Pin every thread pool that matters; call before the first heavy import where possible."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    import torch

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_at_start": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def cifar_subset(n: int, root: Path = CIFAR_IMAGES) -> list[Path]:
    """``n`` CIFAR-10 JPEGs, the same ones every time: round-robin over the classes, files in name order."""
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    per_class = [sorted(c.glob("*.jpg")) for c in classes]
    out: list[Path] = []
    i = 0
    while len(out) < n and any(i < len(files) for files in per_class):
        out.extend(files[i] for files in per_class if i < len(files) and len(out) < n)
        i += 1
    return out


def samples_frame(paths: Sequence[Path]) -> Any:
    """The samples table ``embed_samples`` takes, built the way discover() builds it (content hash per file)."""
    import pandas as pd

    from labelaudit.storage import hash_file

    return pd.DataFrame(
        {
            "sample_id": [str(p) for p in paths],
            "path": [str(p) for p in paths],
            "text": [None] * len(paths),
            "label": [p.parent.name for p in paths],
            "content_hash": [hash_file(p) for p in paths],
        }
    )


def out_stem(out: Path, name: str, quick: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return out / f"speed_{name}{'-quick' if quick else ''}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def load_encoder(model: str) -> Any:
    import torch

    from labelaudit.encoders.openclip import OpenClipEncoder

    return OpenClipEncoder(model, "random", None, torch.device("cpu"))


# ---- 1. embedding throughput: labelaudit vs a bare open_clip loop -------------------------------------------


def bare_openclip_embed(paths: Sequence[Path], model: Any, preprocess: Any, batch_size: int) -> Any:
    """What a user would write without labelaudit: PIL open -> preprocess -> encode_image, in batches."""
    import numpy as np
    import torch
    from PIL import Image

    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            tensors = []
            for path in paths[start : start + batch_size]:
                with Image.open(path) as image:
                    tensors.append(preprocess(image.convert("RGB")))
            features = model.encode_image(torch.stack(tensors))
            out.append(torch.nn.functional.normalize(features.float(), dim=-1).numpy())
    return np.concatenate(out)


def labelaudit_embed(frame: Any, encoder: Any, batch_size: int, workers: int | None) -> Any:
    from labelaudit.cache import EmbeddingCache
    from labelaudit.embed import embed_samples

    result = embed_samples(frame, "image", encoder, EmbeddingCache(None, encoder.identity), batch_size, workers)
    if result.skipped or not result.kept.all():
        raise RuntimeError(f"labelaudit skipped images: {result.skipped[:3]}")
    return result.vectors


def measure_embedding(
    paths: Sequence[Path], encoder: Any, batch_size: int = 64, rounds: int = 4, workers: int | None = None
) -> dict[str, Any]:
    """Alternate labelaudit and the bare loop over the same images in ``rounds`` chunks (ABBA order).

    Each side embeds every image once; throughput is images / summed seconds. The first batch of each
    side is a warm-up and is not timed.
    """
    import numpy as np

    from labelaudit.embed import default_workers

    paths = list(paths)
    frame = samples_frame(paths)
    warm = min(batch_size, len(paths))
    labelaudit_embed(frame.iloc[:warm].reset_index(drop=True), encoder, batch_size, workers)
    bare_openclip_embed(paths[:warm], encoder.model, encoder.preprocess, batch_size)

    chunks = np.array_split(np.arange(len(paths)), max(1, min(rounds, len(paths))))
    per_round: list[dict[str, Any]] = []
    max_diff = 0.0
    for r, rows in enumerate(chunks):
        chunk_paths = [paths[i] for i in rows]
        chunk_frame = frame.iloc[rows].reset_index(drop=True)
        order = ("labelaudit", "bare") if r % 2 == 0 else ("bare", "labelaudit")
        times: dict[str, float] = {}
        vectors: dict[str, Any] = {}
        for side in order:
            start = time.perf_counter()
            if side == "labelaudit":
                vectors[side] = labelaudit_embed(chunk_frame, encoder, batch_size, workers)
            else:
                vectors[side] = bare_openclip_embed(chunk_paths, encoder.model, encoder.preprocess, batch_size)
            times[side] = time.perf_counter() - start
        # labelaudit stores float16-rounded vectors; anything beyond that would mean different compute.
        max_diff = max(max_diff, float(np.abs(vectors["labelaudit"] - vectors["bare"]).max()))
        per_round.append(
            {
                "images": len(rows),
                "order": list(order),
                "labelaudit_s": round(times["labelaudit"], 3),
                "bare_s": round(times["bare"], 3),
                "ratio": round(times["bare"] / times["labelaudit"], 4),
            }
        )
    total_la = sum(r["labelaudit_s"] for r in per_round)
    total_bare = sum(r["bare_s"] for r in per_round)
    n = len(paths)
    return {
        "images": n,
        "batch_size": batch_size,
        "workers": default_workers() if workers is None else workers,
        "rounds": per_round,
        "labelaudit_images_per_s": round(n / total_la, 2),
        "bare_images_per_s": round(n / total_bare, 2),
        "ratio": round(total_bare / total_la, 4),  # labelaudit images/s over bare images/s
        "ratio_per_round_median": round(statistics.median(r["ratio"] for r in per_round), 4),
        "ratio_per_round_min": min(r["ratio"] for r in per_round),
        "ratio_per_round_max": max(r["ratio"] for r in per_round),
        "max_abs_vector_diff": round(max_diff, 6),
    }


def embed_markdown(payload: dict[str, Any]) -> str:
    r = payload["result"]
    rows = [
        [i + 1, x["images"], " then ".join(x["order"]), x["labelaudit_s"], x["bare_s"], x["ratio"]]
        for i, x in enumerate(r["rounds"])
    ]
    return (
        f"# Embedding throughput: labelaudit vs bare open_clip\n\n"
        f"{payload['setup']}\n\n"
        + md_table(
            ["side", "images/s"],
            [
                ["labelaudit `embed_samples` (cache disabled)", r["labelaudit_images_per_s"]],
                ["bare open_clip loop", r["bare_images_per_s"]],
                ["**ratio** (labelaudit / bare, target >= 0.9)", f"**{r['ratio']}**"],
            ],
        )
        + "\nPer round (each round embeds the same images with both sides):\n\n"
        + md_table(["round", "images", "order", "labelaudit s", "bare s", "ratio"], rows)
        + f"\nMax |labelaudit - bare| over all vector entries: {r['max_abs_vector_diff']} (float16 rounding).\n"
    )


def cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
    n = 128 if args.quick and args.n is None else (args.n or 2000)
    rounds = 2 if args.quick and args.rounds is None else (args.rounds or 4)
    encoder = load_encoder(args.model)
    result = measure_embedding(cifar_subset(n), encoder, args.batch_size, rounds, args.workers)
    setup = (
        f"{n} CIFAR-10 JPEGs (32x32, resized to 224 by the model's preprocess), open_clip {args.model} with random "
        f"weights on CPU, batch size {args.batch_size}, {args.threads} torch threads on both sides, labelaudit "
        f"with its default DataLoader decoding workers ({result['workers']}); {len(result['rounds'])} rounds, "
        "alternating which side goes first."
    )
    return save("embed", result, setup, out_stem(args.out, "embed", args.quick), args.quick)


def save(benchmark: str, result: Any, setup: str, stem: Path, quick: bool) -> dict[str, Any]:
    """Write ``stem``.json and .md (and .png for scale); returns the JSON payload."""
    payload: dict[str, Any] = {"benchmark": benchmark, "quick": quick, "setup": setup, "machine": machine()}
    if benchmark == "scale":
        totals, findings = scale_findings(result)
        payload.update(rows=result, scoring_stage_totals=totals, findings=findings)
        write_results(stem, payload, scale_markdown(payload))
        plot_scale(result, stem.with_suffix(".png"))
    else:
        payload["result"] = result
        write_results(stem, payload, embed_markdown(payload) if benchmark == "embed" else cache_markdown(payload))
    return payload


# ---- 2. cached re-run -----------------------------------------------------------------------------------------


def copy_subset(paths: Sequence[Path], folder: Path) -> Path:
    for path in paths:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return folder


def measure_cache(
    folder: Path, model: str, cache_dir: Path, warm_runs: int = 2, methods: str | None = None
) -> dict[str, Any]:
    """One cold ``labelaudit.audit`` (empty cache) and ``warm_runs`` warm ones on the same folder.

    Every run loads the model again (as a re-run of the CLI would); Python imports are not timed.
    """
    import labelaudit

    def run() -> dict[str, Any]:
        start = time.perf_counter()
        result = labelaudit.audit(
            folder, model=model, pretrained="random", device="cpu", cache_dir=cache_dir, methods=methods
        )
        total = time.perf_counter() - start
        return {
            "total_s": round(total, 3),
            "timings_s": result.run["timings_s"],
            "cache": {k: result.run["cache"][k] for k in ("hits", "embedded")},
            "n_samples": result.summary.dataset.n_samples,
            "estimated_error_rate": result.estimated_error_rate,
        }

    cold = run()
    warm = [run() for _ in range(warm_runs)]
    warm_total = statistics.median(w["total_s"] for w in warm)
    warm_embed = statistics.median(w["timings_s"]["embed"] for w in warm)
    stages = warm[0]["timings_s"]
    dominant = max(stages, key=lambda k: stages[k])
    return {
        "images": cold["n_samples"],
        "methods": methods or "default (deft, confident, zeroshot)",
        "cold": cold,
        "warm": warm,
        "ratio_total": round(cold["total_s"] / warm_total, 2),
        "ratio_embed_stage": round(cold["timings_s"]["embed"] / max(warm_embed, 1e-6), 1),
        "warm_dominant_stage": dominant,
        "warm_non_embed_s": round(warm_total - warm_embed, 3),
        "same_result": all(w["estimated_error_rate"] == cold["estimated_error_rate"] for w in warm),
    }


def cache_markdown(payload: dict[str, Any]) -> str:
    r = payload["result"]
    runs = [("cold", r["cold"])] + [(f"warm {i + 1}", w) for i, w in enumerate(r["warm"])]
    stages = list(r["cold"]["timings_s"])
    rows = [  # "-": the stage did not happen (a cached run never loads the model)
        [name, x["total_s"], x["cache"]["hits"], x["cache"]["embedded"]] + [x["timings_s"].get(s, "-") for s in stages]
        for name, x in runs
    ]
    return (
        "# Cached re-run: cold vs warm `labelaudit.audit()`\n\n"
        f"{payload['setup']}\n\n"
        + md_table(["run", "total s", "cache hits", "embedded"] + [f"{s} s" for s in stages], rows)
        + f"\n- **cold / warm total time: {r['ratio_total']}x** (target >= 20x; warm = median of the warm runs)\n"
        f"- cold / warm embed stage alone: {r['ratio_embed_stage']}x\n"
        f"- warm run's largest stage: `{r['warm_dominant_stage']}`; warm time outside the embed stage: "
        f"{r['warm_non_embed_s']} s\n"
        f"- warm runs give the same estimated error rate as the cold run: {r['same_result']}\n"
    )


def cmd_cache(args: argparse.Namespace) -> dict[str, Any]:
    n = 128 if args.quick and args.n is None else (args.n or 2000)
    with tempfile.TemporaryDirectory(prefix="labelaudit-speed-") as tmp:
        folder = copy_subset(cifar_subset(n), Path(tmp) / "images")
        result = measure_cache(folder, args.model, Path(tmp) / "cache", warm_runs=args.warm_runs)
    setup = (
        f"`labelaudit.audit(folder, model={args.model!r}, pretrained='random', device='cpu', cache_dir=...)` on "
        f"{n} CIFAR-10 JPEGs (a copy, one folder per class), default methods, {args.threads} threads. The cold run "
        "starts with an empty cache folder; the warm runs reuse it. Each run loads the model (random init), as a "
        "re-run of the CLI does; sample embeddings, class-prompt embeddings, scorer results and the neighbour "
        "graph come from the cache on a warm run. Python imports are not timed."
    )
    return save("cache", result, setup, out_stem(args.out, "cache", args.quick), args.quick)


# ---- 3. scoring scale ---------------------------------------------------------------------------------------


def synthetic_problem(n: int, k: int, dim: int, seed: int = 0, noise_rate: float = 0.1) -> dict[str, Any]:
    """Clustered unit vectors (one Gaussian cluster per class, 10 % symmetric label noise) and class prompts
    that are noisy copies of the class centres. Built in blocks straight into float16, the dtype the pipeline
    holds embeddings in (1 GB at 1M x 512; no float32 copy of the whole matrix is ever made)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    true = rng.integers(0, k, size=n)
    x = np.empty((n, dim), dtype=np.float16)
    sigma = np.float32(1.0 / np.sqrt(dim))  # noise norm ~1, so a sample's cosine to its centre is ~0.7
    for start in range(0, n, 1 << 16):
        stop = min(n, start + (1 << 16))
        block = centres[true[start:stop]] + sigma * rng.standard_normal((stop - start, dim), dtype=np.float32)
        x[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    given = true.copy()
    flip = rng.random(n) < noise_rate
    given[flip] = (true[flip] + rng.integers(1, k, size=int(flip.sum()))) % k
    prompts = centres + 1.0 * sigma * rng.standard_normal((k, dim), dtype=np.float32)
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    return {"embeddings": x, "labels": given, "true": true, "class_embeddings": prompts.astype(np.float32)}


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now; VmHWM: peak since exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_now_mb() -> float:
    return _status_mb("VmRSS")


def score_one(
    n: int, k: int, method: str, dim: int = 512, seed: int = 0, stage_methods: Sequence[str] = STAGE_METHODS
) -> dict[str, Any]:
    """Time one method on one synthetic problem in this process (the child side of ``scale``).

    ``consensus`` times ``combine()`` on four ScorerResults shaped like the real ones (quality, flags and
    float32 (N, K) probabilities), so its figure is the consensus step itself. ``stage`` runs the whole scoring
    stage as an audit does (``score_methods`` over ``stage_methods``, then the consensus) in one process.
    ``estimate`` runs that stage too, gathering what the estimate reads as the pipeline does, and times the
    audit's estimate stage after it (``seconds``, ``cpu_s``); the stage's figures are kept beside it (``stage_seconds``,
    ``stage_cpu_s``), so the two are measured in one process on one problem.
    """
    # Import what the scorers import lazily, so no run times its own library imports.
    import cleanlab.filter  # noqa: F401
    import cleanlab.rank  # noqa: F401
    import numpy as np
    import scipy.stats  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    from labelaudit.scorers import ScoreContext, ScorerResult, get_scorer, settings_type

    start = time.perf_counter()
    data = synthetic_problem(n, k, dim, seed)
    data_s = time.perf_counter() - start
    baseline_mb = _rss_now_mb()
    labels = data["labels"]
    stage_figures: dict[str, float] = {}  # the estimate row's scoring stage, timed beside it
    if method == "consensus":
        from labelaudit.consensus import combine

        rng = np.random.default_rng(seed + 1)
        results = {}
        for name in ("deft", "confident", "zeroshot", "knn"):
            probs = rng.random((n, k), dtype=np.float32)
            probs /= probs.sum(axis=1, keepdims=True)
            quality = rng.random(n)
            results[name] = ScorerResult(quality, quality < 0.1, probs.argmax(axis=1), probs)
        baseline_mb = _rss_now_mb()
        cpu0, start = _cpu_s(), time.perf_counter()
        combined = combine(results, labels)
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu0
        flagged = float(combined.is_issue.mean())
        accuracy = None
    else:
        context = ScoreContext(
            embeddings=data["embeddings"],
            labels=labels,
            class_names=[f"class {i}" for i in range(k)],
            class_embeddings=data["class_embeddings"],
            logit_scale=None,
            seed=seed,
        )
        settings = {name: settings_type(name)() for name in stage_methods}  # every scorer at its defaults
        cpu0, start = _cpu_s(), time.perf_counter()
        if method in ("stage", "estimate"):
            from labelaudit.cache import ScoreCache
            from labelaudit.consensus import combine
            from labelaudit.estimate import EstimateSettings
            from labelaudit.pipeline import EstimateReads, score_methods

            # What the estimate reads, gathered as labelaudit.pipeline.score_stage gathers it (estimate row only).
            reads = EstimateReads(EstimateSettings() if method == "estimate" else None)
            results, mean_probs, _ = score_methods(
                settings, context, ScoreCache(None, ["benchmark"]), gathered=reads.gathered()
            )
            result = combine(results, labels, mean_probs)
        else:
            result = get_scorer(method).score(context)
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu0
        if method == "estimate":
            stage_figures = {"stage_seconds": round(seconds, 3), "stage_cpu_s": round(cpu, 3)}
            cpu0, start = _cpu_s(), time.perf_counter()
            estimate_rate = time_the_estimate(context, result, results, labels, reads)
            seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu0
            stage_figures["estimated_error_rate"] = round(estimate_rate, 4)
        flagged = float(result.is_issue.mean())
        wrong = labels != data["true"]
        # share of flagged samples whose label really is wrong: a sanity check that the work was real
        accuracy = float(wrong[result.is_issue].mean()) if result.is_issue.any() else None
    return {
        "n": n,
        "k": k,
        "dim": dim,
        "method": method,
        **({"stage_methods": list(stage_methods)} if method == "stage" else {}),
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3),  # user + system CPU seconds of this process: less sensitive to a busy machine
        **stage_figures,
        "data_s": round(data_s, 3),
        "baseline_rss_mb": round(baseline_mb, 1),
        # VmHWM counts this process only. ru_maxrss (RUSAGE_SELF here, wait4/RUSAGE_CHILDREN in the parent)
        # also carries the launcher's RSS at fork time, so it overstates small runs.
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
        "self_ru_maxrss_mb": round(_self_peak_mb(), 1),
        "flagged_share": round(flagged, 4),
        "flag_precision": None if accuracy is None else round(accuracy, 4),
    }


def time_the_estimate(context: Any, consensus: Any, results: Any, labels: Any, reads: Any) -> float:
    """An audit's estimate stage after scoring (labelaudit.pipeline.estimate_stage itself, with no score
    cache): each sample's two nearest neighbours from the graph the scorers built, the report's order, the
    calibrated estimate and the flag cut that follows it. Returns the estimated rate (a sanity check that the
    work was real)."""
    from labelaudit.pipeline import Scored, estimate_stage

    scored = reads.attach(
        Scored(labels, context.class_names, context.class_embeddings, context, results, consensus, {})
    )
    scored = estimate_stage(scored, reads.settings)
    assert scored.estimate is not None
    return float(scored.estimate.rate)


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _self_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(
    n: int, k: int, method: str, dim: int, threads: int, timeout: float, stage_methods: Sequence[str] = STAGE_METHODS
) -> dict[str, Any]:
    """Run ``score_one`` in a fresh process; its peak RSS comes from the kernel's rusage for that child alone."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_child",
        "--n",
        str(n),
        "--k",
        str(k),
        "--method",
        method,
        "--dim",
        str(dim),
        "--threads",
        str(threads),
        "--stage-methods",
        ",".join(stage_methods),
    ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                timed_out = True
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    row: dict[str, Any] = {"n": n, "k": k, "dim": dim, "method": method, "peak_rss_mb": None}
    ru_maxrss_mb = round(usage.ru_maxrss / 1024, 1)  # an upper bound: includes this launcher's RSS at fork
    if timed_out:
        status = f"timed out after {timeout:.0f} s"
        return {**row, "status": status, "seconds": None, "ru_maxrss_mb": ru_maxrss_mb}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1][:300]
        status = f"failed (exit {proc.returncode}): {tail}"
        return {**row, "status": status, "seconds": None, "ru_maxrss_mb": ru_maxrss_mb}
    return {**json.loads(lines[-1]), "status": "ok", "ru_maxrss_mb": ru_maxrss_mb}


def scale_configs(quick: bool, with_1m: bool) -> list[tuple[int, int]]:
    if quick:
        return [(1000, 10), (10_000, 10), (1000, 100)]
    configs = [
        (1000, 10),
        (1000, 100),
        (10_000, 10),
        (10_000, 100),
        (10_000, 1000),
        (100_000, 10),
        (100_000, 100),
        (100_000, 1000),
    ]
    if with_1m:
        configs += [(1_000_000, 10), (1_000_000, 100)]
    return configs


def run_scale(
    configs: Sequence[tuple[int, int]],
    methods: Sequence[str],
    dim: int,
    threads: int,
    timeout: float,
    log: Any = None,
    stage_methods: Sequence[str] = STAGE_METHODS,
) -> list[dict[str, Any]]:
    """Every (N, K, method) in its own process, smallest first. A method that timed out is not run again
    on a larger problem with as many or more classes (it would only time out again)."""
    rows: list[dict[str, Any]] = []
    too_slow: list[tuple[int, int, str]] = []
    for n, k in sorted(configs):
        for method in methods:
            if any(method == m and n >= tn and k >= tk for tn, tk, m in too_slow):
                rows.append(
                    {
                        "n": n,
                        "k": k,
                        "dim": dim,
                        "method": method,
                        "seconds": None,
                        "peak_rss_mb": None,
                        "status": "not run (timed out on a smaller problem)",
                    }
                )
                continue
            row = run_child(n, k, method, dim, threads, timeout, stage_methods)
            if row["status"].startswith("timed out"):
                too_slow.append((n, k, method))
            rows.append(row)
            if log is not None:
                print(json.dumps(row), file=log, flush=True)
    return rows


def scale_markdown(payload: dict[str, Any]) -> str:
    rows = payload["rows"]
    table = []
    for r in rows:
        secs = r["seconds"] if r["seconds"] is not None else r["status"]
        table.append(
            [
                f"{r['n']:,}",
                r["k"],
                r["method"],
                secs,
                r.get("cpu_s", ""),
                r.get("peak_rss_mb"),
                r.get("baseline_rss_mb", ""),
            ]
        )
    totals = [
        [
            f"{t['n']:,}",
            t["k"],
            t["scoring_stage_s"] if t["scoring_stage_s"] is not None else "incomplete",
            t.get("peak_rss_mb") or "",
            t.get("methods", ""),
            t.get("measured", "sum of separate runs"),
        ]
        for t in payload["scoring_stage_totals"]
    ]
    notes = "\n".join(f"- {line}" for line in payload["findings"])
    return (
        "# Scoring scale: time and peak RSS per method\n\n"
        f"{payload['setup']}\n\n"
        + md_table(["N", "classes", "method", "seconds", "CPU s", "peak RSS MB", "RSS before scoring MB"], table)
        + "\nWhole scoring stage (as in a default audit):\n\n"
        + md_table(["N", "classes", "seconds", "peak RSS MB", "methods", "measured as"], totals)
        + ("\n" + notes + "\n" if notes else "")
    )


def scale_findings(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    import math

    by = {(r["n"], r["k"], r["method"]): r for r in rows}
    totals = []
    for n, k in sorted({(r["n"], r["k"]) for r in rows}):
        stage = by.get((n, k, "stage"), {})
        if stage.get("seconds") is not None:  # measured in one process: the figure an audit sees
            totals.append(
                {
                    "n": n,
                    "k": k,
                    "scoring_stage_s": stage["seconds"],
                    "peak_rss_mb": stage["peak_rss_mb"],
                    "methods": "+".join(stage.get("stage_methods", STAGE_METHODS)) + " + consensus",
                    "measured": "one process",
                }
            )
            continue
        parts = [by.get((n, k, m), {}).get("seconds") for m in (*STAGE_METHODS, "consensus")]
        known = [p for p in parts if p is not None]
        missing = [m for m, p in zip((*STAGE_METHODS, "consensus"), parts, strict=True) if p is None]
        totals.append(
            {
                "n": n,
                "k": k,
                "scoring_stage_s": round(sum(known), 2) if known else None,
                "peak_rss_mb": None,
                "methods": "+".join(m for m in (*STAGE_METHODS, "consensus") if m not in missing),
                "measured": "sum of separate runs",
            }
        )
    findings = []
    for r in rows:
        if r["method"] == "estimate" and r.get("cpu_s") is not None and r.get("stage_cpu_s"):
            findings.append(
                f"estimate, {r['n']:,} x {r['k']}: {r['cpu_s']} CPU s after a scoring stage of {r['stage_cpu_s']} "
                f"CPU s in the same process, {r['cpu_s'] / r['stage_cpu_s']:.1%} of it (issue #14 allows 100 %); "
                f"it read {r.get('estimated_error_rate')} for the 10 % of labels moved"
            )
    for method in METHODS:
        for k in sorted({r["k"] for r in rows}):
            # CPU seconds, not wall seconds: on a shared machine the wall clock mostly measures the neighbours
            points = sorted(
                (r["n"], r["cpu_s"], r["peak_rss_mb"])
                for r in rows
                if r["method"] == method and r["k"] == k and r.get("cpu_s")
            )
            if len(points) >= 2:
                (n0, t0, m0), (n1, t1, m1) = points[-2], points[-1]
                slope = math.log(t1 / t0) / math.log(n1 / n0) if t0 > 0 and t1 > 0 else float("nan")
                findings.append(
                    f"{method}, {k} classes: CPU time grows as N^{slope:.2f} from {n0:,} to {n1:,} samples "
                    f"({t0} -> {t1} CPU s); peak RSS {m0} -> {m1} MB"
                )
    return totals, findings


def plot_scale(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {10: "-", 100: "--", 1000: ":"}
    colours = {
        "deft": "C0",
        "confident": "C1",
        "zeroshot": "C2",
        "knn": "C4",
        "consensus": "C3",
        "stage": "k",
        "estimate": "C5",
    }
    for method in METHODS:
        for k, style in styles.items():
            pts = sorted(
                (r["n"], r["cpu_s"], r["peak_rss_mb"])
                for r in rows
                if r["method"] == method and r["k"] == k and r.get("cpu_s")
            )
            if len(pts) < 2:
                continue
            ns, ts, ms = zip(*pts, strict=True)
            ax_t.plot(ns, ts, style, marker="o", color=colours[method], label=f"{method}, {k} classes")
            ax_m.plot(ns, [m / 1024 for m in ms], style, marker="o", color=colours[method])
    for ax, ylabel in ((ax_t, "CPU seconds (user + system)"), (ax_m, "peak RSS (GB, whole process incl. the data)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N samples (512-d)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title("scoring CPU time vs N")
    ax_m.set_title("peak RSS vs N")
    if ax_t.get_legend_handles_labels()[0]:
        ax_t.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_scale(args: argparse.Namespace) -> dict[str, Any]:
    configs = scale_configs(args.quick, args.with_1m)
    if args.configs:
        configs = [(int(n), int(k)) for n, k in (c.lower().split("x") for c in args.configs.split(","))]
    timeout = args.timeout or (120.0 if args.quick else 600.0)
    stem = out_stem(args.out, "scale", args.quick)
    if args.from_log:  # results of an interrupted run: one JSON row per line, as run_scale logs them
        rows = [json.loads(line) for line in stem.with_suffix(".log").read_text().splitlines() if line.strip()]
        rows = list({(r["n"], r["k"], r["method"]): r for r in rows}.values())  # a later row replaces an earlier
        configs = sorted({(r["n"], r["k"]) for r in rows})
    else:
        with open(stem.with_suffix(".log"), "a" if args.merge else "w") as log:
            rows = run_scale(
                configs, args.methods.split(","), args.dim, args.threads, timeout, log, args.stage_methods.split(",")
            )
    if args.merge and stem.with_suffix(".json").exists():
        new = {(r["n"], r["k"], r["method"]) for r in rows}
        old = json.loads(stem.with_suffix(".json").read_text())["rows"]
        rows = sorted(
            [r for r in old if (r["n"], r["k"], r["method"]) not in new] + rows,
            key=lambda r: (r["n"], r["k"], METHODS.index(r["method"])),
        )
    setup = (
        f"Synthetic {args.dim}-d clustered unit vectors with 10 % symmetric label noise and noisy class-centre "
        f"prompts; default settings (DeFT embedding variant, 10 epochs, 5-fold cross-fitting; confident: 5-fold "
        f"sklearn LogisticRegression, at most 100k training rows per fold; zeroshot: fitted temperature; knn: "
        f"k=20, similarity-weighted). Each (N, classes, method) runs in its own process with {args.threads} "
        f"threads; seconds = the scorer call only (data generation excluded); 'stage' = the whole scoring stage "
        f"of an audit in one process. Peak RSS = the child's own VmHWM (whole process: interpreter, libraries "
        f"and the N x {args.dim} float16 embeddings, as an audit holds them; ru_maxrss from wait4 is kept as "
        f"ru_maxrss_mb but also counts the launcher's RSS at fork time). Rows measured before the float16 "
        f"change (commit f7eadd7) held float32 embeddings. Timeout per run: {timeout:.0f} s."
    )
    return save("scale", rows, setup, stem, args.quick)


def cmd_child(args: argparse.Namespace) -> None:
    stage_methods = args.stage_methods.split(",")
    print(json.dumps(score_one(args.n, args.k, args.method, args.dim, stage_methods=stage_methods)), flush=True)


# ---- command line -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quick", action="store_true", help="a small run for smoke tests and development")
        p.add_argument("--threads", type=int, default=2, help="torch/BLAS threads for every side (default 2)")
        p.add_argument("--out", type=Path, default=RESULTS, help="folder for the result files")

    p = sub.add_parser("embed", help="labelaudit vs bare open_clip images/s")
    common(p)
    p.add_argument("--n", type=int, default=None, help="images (default 2000; --quick 128)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 4; --quick 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="labelaudit decoding workers (default: its own)")
    p.add_argument("--model", default=DEFAULT_MODEL)

    p = sub.add_parser("cache", help="cold vs warm labelaudit.audit()")
    common(p)
    p.add_argument("--n", type=int, default=None, help="images (default 2000; --quick 128)")
    p.add_argument("--warm-runs", type=int, default=2)
    p.add_argument("--model", default=DEFAULT_MODEL)

    p = sub.add_parser("scale", help="time and peak RSS of each method vs N and classes")
    common(p)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--timeout", type=float, default=None, help="seconds per run (default 600; --quick 120)")
    p.add_argument("--with-1m", action="store_true", help="also N = 1,000,000 (10 and 100 classes)")
    p.add_argument("--configs", default=None, help="only these N x classes, e.g. 1000x10,1000x100")
    p.add_argument("--merge", action="store_true", help="replace these runs' rows in the existing results")
    p.add_argument(
        "--stage-methods",
        default=",".join(STAGE_METHODS),
        help="methods of the 'stage' row (default: an audit's defaults; at 1M leave out knn, whose graph alone "
        "takes over 20 min here)",
    )
    p.add_argument("--from-log", action="store_true", help="write the results from the run log (interrupted run)")

    p = sub.add_parser("_child", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stage-methods", default=",".join(STAGE_METHODS))

    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.command == "_child":
        cmd_child(args)
        return
    handler = {"embed": cmd_embed, "cache": cmd_cache, "scale": cmd_scale}[args.command]
    payload = handler(args)
    summary = payload.get("result", {}).get("ratio") or payload.get("result", {}).get("ratio_total")
    print(f"{args.command}: done" + (f", ratio {summary}" if summary else "") + f"; results in {args.out}")


if __name__ == "__main__":
    main()
