"""Commands that need no model never load one: importing their modules, --help, usage errors, gate, export,
view and apply leave torch, sentence-transformers and open_clip out of the process (each runs in a fresh
subprocess, so nothing another test imported counts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labelaudit.cli import main

from .conftest import ROOT, SAMPLE_TEXT
from .report_factory import report_from_data

HEAVY = ("torch", "sentence_transformers", "open_clip")
MARK = "heavy modules loaded: "  # how the probe's own lines stand out from what the commands print
# The modules behind each command that needs no model (they import config, report, html, the scorers'
# Settings and the engine registry in turn), and the pipeline and engines, which load models only to embed.
COMMAND_MODULES = [
    "labelaudit.cli",
    "labelaudit.gate",
    "labelaudit.export",
    "labelaudit.apply",
    "labelaudit.html.view",
    "labelaudit.verification",
    "labelaudit.verify",
    "labelaudit.estimate",
    "labelaudit.pipeline",
    # A fully cached audit reads everything back through these: they load a model only on a cache miss.
    "labelaudit.encoders",
    "labelaudit.embed",
    "labelaudit.engines.ray_engine",
]


def _heavy_modules_after_each(steps: list[str], cwd: Path) -> tuple[list[list[str]], str]:
    """Run ``steps`` in turn in one fresh interpreter (one start instead of one per step: the suite keeps to
    its time budget); after each, the heavy libraries in sys.modules, and the interpreter's stderr. The
    libraries only accumulate, so the first step with any is the one that loaded them."""
    probe = "import json, sys\n"
    for step in steps:
        probe += f"exec({step!r})\nprint({MARK!r} + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    found = [json.loads(line[len(MARK) :]) for line in done.stdout.splitlines() if line.startswith(MARK)]
    assert len(found) == len(steps), done.stdout
    return found, done.stderr


def _heavy_modules_after(code: str, cwd: Path) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter; the heavy libraries it left in sys.modules, and its stderr."""
    found, stderr = _heavy_modules_after_each([code], cwd)
    return found[0], stderr


def _first_heavy(steps: list[str], labels: list[object], cwd: Path) -> tuple[object, list[str]] | None:
    for label, heavy in zip(labels, _heavy_modules_after_each(steps, cwd)[0], strict=True):
        if heavy:
            return label, heavy
    return None


def test_importing_a_command_module_loads_no_model_library(tmp_path: Path) -> None:
    assert _first_heavy([f"import {m}" for m in COMMAND_MODULES], COMMAND_MODULES, tmp_path) is None


def _cli(args: list[str], code: int) -> str:
    return f"from labelaudit.cli import main\nassert main({args!r}) == {code}, ('exit code', {args!r})"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return report_from_data(tmp_path_factory.mktemp("r") / "report", SAMPLE_TEXT, {"sports/t1.txt": "cooking"})


def test_help_and_audit_usage_errors_load_no_model_library(tmp_path: Path) -> None:
    cases = [
        (["--help"], 0),
        (["audit", "--help"], 0),
        (["gate", "--help"], 0),
        (["audit", str(tmp_path / "does-not-exist"), "--out", str(tmp_path / "o")], 2),
        (["audit", str(SAMPLE_TEXT), "--out", str(tmp_path / "o"), "--methods", "deft,bogus"], 2),
        (["audit", str(SAMPLE_TEXT), "--out", str(tmp_path / "o"), "--deft-variant", "x"], 2),
    ]
    assert _first_heavy([_cli(args, code) for args, code in cases], [args for args, _ in cases], tmp_path) is None


def test_gate_export_view_and_apply_load_no_model_library(report: Path, tmp_path: Path) -> None:
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    cases = [
        (["gate", str(report), "--max-error-rate", "1"], 0),
        (["export", str(report), "--to", "labelstudio", "--out", str(tmp_path / "q.json")], 0),
        (["view", str(report), "--rerender", "--no-open"], 0),
        (["apply", str(queue), "--data", str(SAMPLE_TEXT), "--dry-run"], 0),
        (["verify", str(report), "--n", "5", "--out", str(tmp_path / "v.csv")], 0),
        (["estimate", str(report), "--verified", str(tmp_path / "v.csv")], 0),
    ]
    assert _first_heavy([_cli(args, code) for args, code in cases], [args for args, _ in cases], tmp_path) is None


def test_commands_on_a_missing_report_fail_fast_without_a_model_library(tmp_path: Path) -> None:
    """The command a user types first, as the console script runs it: `labelaudit gate /nonexistent`."""
    missing = str(tmp_path / "nonexistent")
    for args in (
        ["gate", missing, "--max-error-rate", "0.1"],
        ["export", missing, "--out", str(tmp_path / "q.csv")],
        ["view", missing, "--no-open"],
        ["apply", str(tmp_path / "q.csv"), "--data", missing],
        ["verify", missing],
        ["estimate", missing],
    ):
        code = f"import sys\nsys.argv = ['labelaudit', *{args!r}]\nfrom labelaudit.cli import main\n"
        code += "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code == 2, exit.code"
        heavy, stderr = _heavy_modules_after(code, tmp_path)
        assert heavy == [], (args, stderr)
        assert "error:" in stderr and "Traceback" not in stderr, (args, stderr)
