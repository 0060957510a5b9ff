"""How every benchmark writes its committed results: ``<stem>.json`` and ``<stem>.md`` side by side, each
written atomically (labelaudit.io), so a benchmark stopped mid-write never leaves a truncated table in
benchmarks/results/ for the docs to quote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labelaudit.io import write_text_atomic


def write_results(stem: Path, payload: Any, markdown: str, indent: int = 2) -> None:
    """``payload`` as JSON (``indent`` as the committed files have it) and ``markdown`` beside it."""
    write_text_atomic(stem.with_suffix(".json"), json.dumps(payload, indent=indent) + "\n")
    write_text_atomic(stem.with_suffix(".md"), markdown)
