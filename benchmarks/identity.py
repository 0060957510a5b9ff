"""Byte-identity check for refactors: the same inputs must give the same report bytes before and after.

    python benchmarks/identity.py record [--cases a,b]   # run the cases, store their digests as the golden
    python benchmarks/identity.py check  [--cases a,b]   # run them again, compare with the golden; exit 1 on a diff

Each case runs the CLI (``python -m labelaudit.cli``, in a fresh process, from this checkout) or the Python
API on a copy of its data under ``--work`` (default /tmp/labelaudit-identity: report files hold absolute
sample paths, so the data must sit at the same place every time). What is compared, per case: every report
file except ``run.json`` (timings), the command's exit code, stdout and stderr (the terminal summary, the
error messages), and the files a follow-up command (gate, export, apply --dry-run) writes.

``summary.json`` may gain keys a change adds on purpose (``ADDED_SUMMARY_KEYS``): the file is compared as
it is, and, when that differs, as it reads with those keys taken out, serialised as labelaudit writes it.
The digests depend on the library versions and the machine (floating-point reductions), so the golden
records both (the CPU model and its vector extensions too) and ``check`` says when they differ. The golden
lives in benchmarks/results/identity_golden.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "benchmarks" / "results" / "identity_golden.json"
SHARED = REPO.parent / "shared" / "assets"
if not SHARED.is_dir():  # a worktree under /work/wt/<name> sits one level deeper than /work/main
    SHARED = Path("/work/shared/assets")
TINY_MODEL = REPO / "tests" / "assets" / "labelaudit-tiny.json"
IMAGES_PER_CLASS = 30
# Keys a deliberate change added to summary.json since the golden was recorded (a dotted path reaches into
# nested objects); everything else in it must stay byte for byte. The golden was re-recorded after estimator
# version 17 (f80769e); version 18 adds how far the surest anchors disagree with their labels more than the
# next ones do, wherever the anchors are read.
ADDED_SUMMARY_KEYS = ("error_rate.details.anchor_inner_excess_z",)
VERSIONED = (
    "numpy",
    "torch",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "cleanlab",
    "open_clip_torch",
    "sentence-transformers",
    "faiss-cpu",
    "pillow",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def summary_without_added(data: bytes) -> bytes:
    """summary.json with ``ADDED_SUMMARY_KEYS`` removed, written as labelaudit writes it (io.write_json_atomic)."""
    payload = json.loads(data)
    for key in ADDED_SUMMARY_KEYS:
        *parents, last = key.split(".")
        holder = payload
        for name in parents:
            holder = holder.get(name) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(last, None)
    return (json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def report_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file below a report folder except run.json; summary.json also without added keys."""
    digests: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == "run.json":
            continue
        data = path.read_bytes()
        digests[rel] = sha256(data)
        if rel == "summary.json":
            digests["summary.json (without added keys)"] = sha256(summary_without_added(data))
    return digests


def compare(golden: dict[str, str], now: dict[str, str]) -> list[str]:
    """Human-readable differences; summary.json counts as equal when it matches without the added keys."""
    problems = []
    for name in sorted(set(golden) | set(now)):
        if name.endswith("summary.json (without added keys)"):
            continue  # compared through its summary.json below
        if name.endswith("summary.json") and golden.get(name) == now.get(f"{name} (without added keys)"):
            continue
        if name not in now:
            problems.append(f"{name}: missing now")
        elif name not in golden:
            problems.append(f"{name}: new file")
        elif golden[name] != now[name]:
            problems.append(f"{name}: differs")
    return problems


@dataclass
class Case:
    name: str
    run: Callable[[Path], dict[str, str]]
    needs_shared: bool = False
    notes: list[str] = field(default_factory=list)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["COLUMNS"] = "160"  # rich wraps the terminal tables at the console width
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("LABELAUDIT_CACHE_DIR", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def cli(work: Path, *args: str, name: str) -> dict[str, str]:
    """Run ``labelaudit ARGS`` in ``work``; digests of its exit code, stdout and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "labelaudit.cli", *args], cwd=work, env=_env(), capture_output=True, timeout=1800
    )
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    stem = f"{len(list(logs.glob('*.out'))):03d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]
    (logs / f"{stem}.out").write_bytes(done.stdout)
    (logs / f"{stem}.err").write_bytes(done.stderr)
    return {
        f"{name}: exit code": str(done.returncode),
        f"{name}: stdout": sha256(done.stdout),
        f"{name}: stderr": sha256(_without_progress(done.stderr)),
    }


def _without_progress(stderr: bytes) -> bytes:
    # Progress bars are off without a terminal, but keep the check independent of that: drop timing lines.
    lines = stderr.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(line for line in lines if "0:00:" not in line).encode()


def prefixed(prefix: str, digests: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}/{k}": v for k, v in digests.items()}


def rerendered(work: Path, report: str) -> dict[str, str]:
    """report.html rendered again from the files (`view --rerender`): the summary must read back as written."""
    out = cli(work, "view", report, "--rerender", "--no-open", name="view-rerender")
    out["rerendered/report.html"] = sha256((work / report / "report.html").read_bytes())
    return out


def prepare(work: Path) -> None:
    """The inputs of every case, copied under ``work`` (always at the same paths)."""
    import pandas as pd

    data = work / "data"
    shutil.copytree(REPO / "sample_data" / "text", data / "text")
    images = SHARED / "cifar10n" / "images"
    if images.is_dir():
        rows = []
        for folder in sorted(p for p in images.iterdir() if p.is_dir()):
            for file in sorted(folder.glob("*.jpg"))[:IMAGES_PER_CLASS]:
                target = data / "images300" / folder.name / file.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target)
                rows.append({"path": f"images300/{folder.name}/{file.name}", "label": folder.name})
        pd.DataFrame(rows).to_csv(data / "images300.csv", index=False)
    shutil.copyfile(REPO / "sample_data" / "tags.csv", data / "tags.csv")
    youtube = SHARED / "text" / "wrench_youtube"
    if youtube.is_dir():
        frame = pd.read_csv(youtube / "wrench_youtube.csv", dtype=str, keep_default_na=False)
        frame[["text", "given_label"]].rename(columns={"given_label": "label"}).to_csv(
            data / "youtube.csv", index=False
        )
        shutil.copyfile(youtube / "classes.txt", data / "youtube_classes.txt")


MODEL = ("--model", str(TINY_MODEL), "--pretrained", "random")


def case_text(work: Path) -> dict[str, str]:
    out = cli(work, "audit", "data/text", "--out", "out/text", "--cache-dir", "cache/text", name="audit")
    out.update(prefixed("report", report_digests(work / "out" / "text")))
    out.update(rerendered(work, "out/text"))
    out.update(cli(work, "gate", "out/text", "--max-error-rate", "0.01", "--max-flagged", "10", name="gate"))
    out.update(cli(work, "gate", "out/text", "--baseline", "out/text", "--json", name="gate-baseline"))
    out.update(cli(work, "export", "out/text", "--to", "labelstudio", "--out", "q/text.json", name="export-ls"))
    out.update(cli(work, "export", "out/text", "--to", "csv", "--top", "5", "--out", "q/text.csv", name="export-csv"))
    for file in sorted((work / "q").glob("text*")):
        out[f"export/{file.name}"] = sha256(file.read_bytes())
    return out


def _text_report(work: Path) -> None:
    """out/text for a case that reads it: the text case makes it when it runs first."""
    if not (work / "out" / "text" / "summary.json").is_file():
        cli(work, "audit", "data/text", "--out", "out/text", "--cache-dir", "cache/text", "-q", name="setup")


def case_text_options(work: Path) -> dict[str, str]:
    """Every scorer option away from its default, so a setting dropped on the way to its scorer shows."""
    args = (
        "audit", "data/text", "--out", "out/text-options", "--cache-dir", "cache/text",
        "--methods", "deft,knn,confident", "--deft-variant", "prompt", "--deft-epochs", "2", "--deft-ctx", "4",
        "--deft-lr", "0.005", "--deft-folds", "2", "--folds", "3", "--seed", "7", "--batch-size", "16",
    )  # fmt: skip
    out = cli(work, *args, name="audit")
    out.update(prefixed("report", report_digests(work / "out" / "text-options")))
    return out


# sample_data/README.md: the text folder's deliberately wrong labels and their true classes
TEXT_GOLD = {"cooking/t12.txt": "sports", "finance/t25.txt": "space", "space/t26.txt": "cooking"}


def case_verify(work: Path) -> dict[str, str]:
    """The verified-sample workflow on the text report: draw, review (by the gold labels), estimate, gate."""
    import pandas as pd

    _text_report(work)
    out = cli(work, "verify", "out/text", "--n", "24", "--out", "q/verify.csv", "--seed", "1", name="verify")
    queue = pd.read_csv(work / "q" / "verify.csv", dtype=str, keep_default_na=False)
    queue["decision"] = [f"relabel:{TEXT_GOLD[s]}" if s in TEXT_GOLD else "keep" for s in queue["sample_id"]]
    queue.to_csv(work / "q" / "verify.csv", index=False)
    out.update(cli(work, "estimate", "out/text", "--verified", "q/verify.csv", name="estimate"))
    for file in sorted((work / "out" / "text" / "verification").iterdir()):
        data = file.read_bytes()
        if file.suffix == ".json":  # the design and the estimate say when they were made: compared without it
            record = json.loads(data)
            record.pop("created_at", None)
            data = json.dumps(record, sort_keys=True).encode()
        out[f"verification/{file.name}"] = sha256(data)
    gate = ("gate", "out/text", "--max-error-rate", "0.05", "--use", "verified")
    out.update(cli(work, *gate, "--json", name="gate-verified"))
    out.update(cli(work, *gate, "--on", "point", name="gate-verified-point"))
    return out


def case_tags(work: Path) -> dict[str, str]:
    """A tag-set (multi-label) manifest: its own scorers, report tables, gate and exports."""
    args = (
        "audit",
        "data/tags.csv",
        "--label-sep",
        "|",
        "--id-col",
        "id",
        "--out",
        "out/tags",
        "--cache-dir",
        "cache/tags",
    )
    out = cli(work, *args, name="audit")
    out.update(prefixed("report", report_digests(work / "out" / "tags")))
    out.update(cli(work, "gate", "out/tags", "--max-error-rate", "0.0", "--json", name="gate"))
    out.update(cli(work, "export", "out/tags", "--to", "csv", "--out", "q/tags.csv", name="export-csv"))
    out.update(cli(work, "export", "out/tags", "--to", "labelstudio", "--out", "q/tags.json", name="export-ls"))
    for file in sorted((work / "q").glob("tags*")):
        out[f"export/{file.name}"] = sha256(file.read_bytes())
    return out


def case_images300(work: Path) -> dict[str, str]:
    args = ("audit", "data/images300", "--out", "out/images300", "--cache-dir", "cache/images", *MODEL)
    out = cli(work, *args, name="audit")
    out.update(prefixed("report", report_digests(work / "out" / "images300")))
    out.update(rerendered(work, "out/images300"))
    out.update(cli(work, "export", "out/images300", "--to", "cvat", "--out", "q/img.xml", "--top", "20", name="cvat"))
    out.update(cli(work, "export", "out/images300", "--to", "fiftyone-json", "--out", "q/img.json", name="fo"))
    out.update(
        cli(work, "export", "out/images300", "--to", "csv", "--out", "q/img.csv", "--top", "6", name="export-csv")
    )
    for file in sorted((work / "q").glob("img*")):
        out[f"export/{file.name}"] = sha256(file.read_bytes())
    _decide(work / "q" / "img.csv")
    out.update(cli(work, "apply", "q/img.csv", "--data", "data/images300", "--dry-run", name="apply-dry-run"))
    return out


def _decide(queue: Path) -> None:
    """Mark a reviewed queue: relabel the first row to its suggestion, remove the second, keep the rest."""
    import pandas as pd

    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame["decision"] = "keep"
    frame.loc[0, "decision"] = f"relabel:{frame.loc[0, 'suggested_label']}"
    if len(frame) > 1:
        frame.loc[1, "decision"] = "remove"
    frame.to_csv(queue, index=False)


def case_images300_manifest(work: Path) -> dict[str, str]:
    args = (
        "audit", "data/images300.csv", "--out", "out/images300-manifest", "--no-cache", *MODEL,
        "--methods", "zeroshot,knn,confident", "--workers", "0",
    )  # fmt: skip
    out = cli(work, *args, name="audit")
    out.update(prefixed("report", report_digests(work / "out" / "images300-manifest")))
    return out


def case_youtube(work: Path) -> dict[str, str]:
    args = ("audit", "data/youtube.csv", "--out", "out/youtube", "--cache-dir", "cache/youtube")
    out = cli(work, *args, "--classes", "data/youtube_classes.txt", name="audit")
    out.update(prefixed("report", report_digests(work / "out" / "youtube")))
    out.update(cli(work, "export", "out/youtube", "--top", "4", "--out", "q/yt.csv", name="export-csv"))
    out["export/yt.csv"] = sha256((work / "q" / "yt.csv").read_bytes())
    _decide(work / "q" / "yt.csv")
    out.update(cli(work, "apply", "q/yt.csv", "--data", "data/youtube.csv", "--dry-run", name="apply-dry-run"))
    return out


API_SCRIPT = """
import sys
from pathlib import Path
import pandas as pd
import labelaudit
files = sorted(Path("data/text").glob("*/*.txt"))
rows = [{"text": p.read_text(encoding="utf-8"), "label": p.parent.name} for p in files]
labelaudit.audit(pd.DataFrame(rows), out="out/api", methods="zeroshot,knn,confident", cache_dir="cache/text", seed=3,
                 folds=4)
"""


def case_api_dataframe(work: Path) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", API_SCRIPT], cwd=work, env=_env(), capture_output=True, timeout=900)
    out = {"api: exit code": str(done.returncode), "api: stdout": sha256(done.stdout)}
    if done.returncode:
        sys.stderr.write(done.stderr.decode("utf-8", "replace"))
    out.update(prefixed("report", report_digests(work / "out" / "api")))
    return out


USAGE_ERRORS: list[tuple[str, ...]] = [
    ("audit", "does/not/exist", "--out", "out/x"),
    ("audit", "data/text", "--out", "out/x", "--methods", "deft,bogus"),
    ("audit", "data/text", "--out", "out/x", "--methods", ","),
    ("audit", "data/text", "--out", "out/x", "--deft-variant", "nope", "--methods", "deft"),
    ("audit", "data/text", "--out", "out/x", "--engine", "spark"),
    ("audit", "data/text", "--out", "out/text"),  # a report is already there
    ("audit", "data/text", "--out", "out/x", "--cache-dir", "s3://bucket@cred/x"),
    ("gate", "does/not/exist", "--max-error-rate", "0.1"),
    ("gate", "out/text"),
    ("export", "out/text", "--to", "cvat"),
    ("export", "does/not/exist"),
    ("apply",),
    ("apply", "q/none.csv", "--data", "data/text"),
    ("view", "does/not/exist", "--no-open"),
]


def case_usage_errors(work: Path) -> dict[str, str]:
    _text_report(work)
    out: dict[str, str] = {}
    for number, args in enumerate(USAGE_ERRORS):
        out.update(cli(work, *args, name=f"{number:02d} {' '.join(args)}"))
    return out


CASES = [
    Case("text", case_text),
    Case("text-options", case_text_options),
    Case("images300", case_images300, needs_shared=True),
    Case("images300-manifest", case_images300_manifest, needs_shared=True),
    Case("youtube", case_youtube, needs_shared=True),
    Case("api-dataframe", case_api_dataframe),
    Case("usage-errors", case_usage_errors),
    Case("verify", case_verify),
    Case("tags", case_tags),
]


def environment() -> dict[str, Any]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_description(),
        "versions": versions,
    }


def cpu_description() -> str | None:
    """The CPU model and its widest vector extensions: BLAS and torch pick kernels by them, so the same
    library versions on another CPU give other float reductions, and other digests."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags_line = next((line for line in info.splitlines() if line.startswith("flags")), "")
    flags = set(flags_line.split(":", 1)[1].split()) if ":" in flags_line else set()
    vector = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if name in flags]
    return " ".join([model, *vector]).strip() or None


def run_cases(work: Path, names: list[str]) -> dict[str, dict[str, str]]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    prepare(work)
    results: dict[str, dict[str, str]] = {}
    for case in CASES:
        if case.name not in names:
            continue
        if case.needs_shared and not (work / "data" / "images300").is_dir():
            print(f"{case.name}: skipped (no shared assets at {SHARED})", file=sys.stderr)
            continue
        start = time.perf_counter()
        results[case.name] = case.run(work)
        print(f"{case.name}: {len(results[case.name])} digests in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("--cases", default=",".join(c.name for c in CASES))
    parser.add_argument("--work", type=Path, default=Path("/tmp/labelaudit-identity"))
    parser.add_argument("--golden", type=Path, default=GOLDEN)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = sorted(set(names) - {c.name for c in CASES})
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}")
    work = args.work.resolve()
    if args.action == "check":
        golden = json.loads(args.golden.read_text(encoding="utf-8"))
        if golden["work"] != str(work):
            parser.error(f"the golden was recorded in {golden['work']}; pass --work {golden['work']}")
    results = run_cases(work, names)
    if args.action == "record":
        previous = json.loads(args.golden.read_text(encoding="utf-8")) if args.golden.exists() else {"cases": {}}
        payload = {
            "work": str(work),
            "environment": environment(),
            "cases": {**previous.get("cases", {}), **results},
        }
        args.golden.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"recorded {sum(map(len, results.values()))} digests of {len(results)} case(s) in {args.golden}")
        return 0
    if golden["environment"] != environment():
        print(f"note: recorded with {golden['environment']}, running with {environment()}", file=sys.stderr)
    failed = 0
    for name, digests in results.items():
        problems = compare(golden["cases"].get(name, {}), digests)
        print(f"{name}: {'identical' if not problems else 'DIFFERENT'} ({len(digests)} digests)")
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    print(f"{len(results) - failed} of {len(results)} case(s) identical; logs and reports in {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
