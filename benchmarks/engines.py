"""--engine local vs --engine ray on the same images, with 1 and 2 workers (issue #9).

    python benchmarks/engines.py [--quick] [--n 10000] [--model PATH_OR_NAME]

Each configuration is one `labelaudit audit` process on the same image folder with an empty cache, so
every image is decoded and embedded; the figure is the embed stage's wall time from the run record
(`run.timings_s.embed`: for Ray it includes starting the local Ray and loading the model in each actor).
The default model is the tiny random open_clip architecture of the test suite: its forward pass is cheap,
so the figures measure what the engines add (decoding, batching, Ray start-up and data movement) rather
than the model. A CPU ViT-B-32 forward pass takes ~25 min per configuration on 10k images here; pass
`--model ViT-B-32` to measure that.

Results go to benchmarks/results/engines.json and engines.md (--quick: engines-quick.*).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # results_io, also when a test loads this file by path
from results_io import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CIFAR_IMAGES = ROOT.parent / "shared" / "assets" / "cifar10n" / "images"
TINY_MODEL = ROOT / "tests" / "assets" / "labelaudit-tiny.json"
CONFIGS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


def image_subset(n: int, folder: Path, images: Path) -> Path:
    """A class-folder tree of symlinks to the first n / classes images of each class; the image folder
    itself when n covers all of it (CIFAR's classes are not exactly balanced)."""
    classes = sorted(p for p in images.iterdir() if p.is_dir())
    if n >= sum(1 for cls in classes for _ in cls.iterdir()):
        return images
    per_class = max(1, n // len(classes))
    for cls in classes:
        (folder / cls.name).mkdir(parents=True)
        for image in sorted(cls.iterdir())[:per_class]:
            (folder / cls.name / image.name).symlink_to(image)
    return folder


def run_config(data: Path, engine: str, workers: int, model: str, cache: Path) -> dict[str, Any]:
    pretrained = "random"
    cmd = [
        sys.executable,
        "-m",
        "labelaudit.cli",
        "audit",
        str(data),
        "--model",
        model,
        "--pretrained",
        pretrained,
        "--methods",
        "zeroshot",
        "--cache-dir",
        str(cache),
        "--out",
        str(cache.with_name(cache.name + "-report")),
        "--json",
        "--quiet",
        "--device",
        "cpu",
    ]
    cmd += ["--engine", "ray", "--ray-concurrency", str(workers)] if engine == "ray" else ["--workers", str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{engine} x{workers} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    report = json.loads(proc.stdout)
    n = report["dataset"]["n_samples"]
    embed_s = report["run"]["timings_s"]["embed"]
    return {
        "engine": engine,
        "workers": workers,
        "images": n,
        "embedded": report["run"]["cache"]["embedded"],
        "embed_s": embed_s,
        "images_per_s": round(n / embed_s, 1),
        "process_wall_s": round(wall, 1),
    }


def markdown(payload: dict[str, Any]) -> str:
    rows = payload["rows"]
    base = rows[0]["embed_s"]
    lines = [
        "| engine | workers | images | embed s | images/s | speed vs local, 1 worker |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['images']:,} | {r['embed_s']} | {r['images_per_s']} | "
            f"{base / r['embed_s']:.2f} |"
        )
    return "# Embedding engines: local vs ray\n\n" + payload["setup"] + "\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 images (for smoke runs)")
    parser.add_argument("--n", type=int, default=None, help="images (default: all 10,000; --quick 200)")
    parser.add_argument("--model", default=str(TINY_MODEL), help="open_clip model name or config .json")
    parser.add_argument("--images", type=Path, default=CIFAR_IMAGES)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        raise SystemExit(f"no images at {args.images}: see ../shared/assets/README.md")
    n = args.n or (200 if args.quick else 10_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="labelaudit-engines-") as tmp:
        data = image_subset(n, Path(tmp) / "images", args.images)
        for engine, workers in CONFIGS:
            row = run_config(data, engine, workers, args.model, Path(tmp) / f"cache-{engine}-{workers}")
            rows.append(row)
            print(json.dumps(row), flush=True)
    model = "the tiny random test model (32 px, 2 layers)" if args.model == str(TINY_MODEL) else args.model
    payload = {
        "setup": (
            f"{rows[0]['images']:,} CIFAR-10 JPEGs (32x32), {model} with random weights, `--methods zeroshot`, "
            f"CPU only, OMP_NUM_THREADS=1, empty cache per configuration, {os.cpu_count()} CPUs shared with other "
            "jobs. Embed s = `run.timings_s.embed` (Ray: includes starting Ray and loading the model in each actor)."
        ),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("engines-quick" if args.quick else "engines")
    write_results(stem, payload, markdown(payload))
    print(f"engines: done; results in {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
