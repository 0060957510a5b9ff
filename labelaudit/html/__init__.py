"""Self-contained HTML report: ``report.html`` beside the tables, opening offline with no server.

Every string taken from the data reaches the page either through :func:`html.escape` (the static overview) or
through an inline ``<script type="application/json">`` blob with ``<``, ``>`` and ``&`` escaped; the page's script
builds the DOM with ``textContent`` only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import re
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import write_atomic, write_text_atomic
from ..summary import Summary
from .assets import SCRIPT, STYLE

REPORT_HTML = "report.html"
THUMBS_DIR = "thumbs"
# Inside thumbs/: the names of the thumbnails a render wrote. A render deletes only these, so a thumbs/
# folder the user keeps in --out (or put files into) is never emptied.
THUMBS_MANIFEST = ".labelaudit-thumbs"
THUMB_NAME = re.compile(r"^[0-9a-f]{16}\.jpg$")  # what _thumb_name makes; a manifest line is trusted only if it matches
THUMB_SIZE = 96
INLINE_THUMB_LIMIT = 2000  # more thumbnails than this go to a sibling thumbs/ folder instead of the page
TOP_RANKED = 200  # the grid shows every flagged row plus the top N ranked ones
MAX_ROWS = 100_000
CLEAN_EXAMPLES = 3  # confidently clean samples per class, for comparison
DECISION_COLUMNS_LEADING = ["rank", "sample_id", "path", "given_label", "suggested_label", "decision"]


def json_for_script(payload: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>``, no ``<!--``, no entity surprises."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def select_rows(samples: pd.DataFrame, top: int = TOP_RANKED, cap: int = MAX_ROWS) -> pd.DataFrame:
    """Rows for the suspects grid: flagged rows plus the ``top`` ranked ones, most suspect first, at most ``cap``."""
    ranked = samples.sort_values("rank", kind="mergesort") if "rank" in samples else samples
    flagged = _flag_mask(ranked)
    keep = flagged.to_numpy().copy()
    keep[: min(top, len(keep))] = True
    return ranked[keep].head(cap)


def clean_rows(samples: pd.DataFrame, per_class: int = CLEAN_EXAMPLES) -> pd.DataFrame:
    """The ``per_class`` highest-scoring unflagged samples of each class."""
    clean = samples[~_flag_mask(samples)]
    clean = clean.sort_values(["consensus_score", "sample_id"], ascending=[False, True], kind="mergesort")
    return clean.groupby("given_label", sort=False).head(per_class)


def _flag_mask(frame: pd.DataFrame) -> pd.Series:
    mask = frame["is_issue"].astype(bool)
    if "issue_type" in frame:
        mask = mask | (frame["issue_type"].fillna("").astype(str) != "")
    return mask


def thumbnail_bytes(path: str | None, size: int = THUMB_SIZE) -> bytes | None:
    """A small JPEG of the image at ``path``; None when it is missing or unreadable."""
    if not path:
        return None
    try:
        from PIL import Image

        from ..storage import readable

        with Image.open(readable(path)) as image:
            image.draft("RGB", (size * 2, size * 2))
            image = image.convert("RGB")
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=70)
            return buffer.getvalue()
    except Exception:  # a broken or vanished file gets a placeholder, never a failed report
        return None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _row_record(row: dict[str, Any], methods: list[str]) -> dict[str, Any]:
    return {
        "rank": int(row["rank"]),
        "id": _text(row["sample_id"]),
        "path": _text(row.get("path")),
        "text": _text(row.get("text")),
        "given": _text(row["given_label"]),
        "sugg": _text(row["suggested_label"]),
        "prob": _number(row.get("suggested_prob")),
        "score": _number(row["consensus_score"]),
        "flag": bool(row["is_issue"]),
        "type": _text(row.get("issue_type")) or ("label_error" if row["is_issue"] else ""),
        "hash": _text(row.get("content_hash")),
        "m": {
            m: [_number(row.get(f"{m}_score")), bool(row.get(f"{m}_issue") or False), _text(row.get(f"{m}_suggested"))]
            for m in methods
        },
    }


def _thumb_name(record: dict[str, Any]) -> str:
    return hashlib.sha1(f"{record['id']}\0{record['path']}".encode()).hexdigest()[:16] + ".jpg"


def written_thumbs(thumbs: Path) -> set[str]:
    """The thumbnails an earlier render listed in ``thumbs/THUMBS_MANIFEST``: the only files a render may delete."""
    try:
        lines = (thumbs / THUMBS_MANIFEST).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    return {line for line in lines if THUMB_NAME.match(line)}


def remove_written_thumbs(thumbs: Path) -> None:
    """Delete what earlier renders wrote into ``thumbs/`` (and the folder, once nothing else is in it)."""
    if not thumbs.is_dir():
        return
    for name in written_thumbs(thumbs):
        (thumbs / name).unlink(missing_ok=True)
    (thumbs / THUMBS_MANIFEST).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        thumbs.rmdir()  # only when empty: anything else in it is not ours


def _add_thumbs(records: list[dict[str, Any]], out: Path, inline: bool) -> int:
    """Set ``thumb`` on image records (a data: URI, or a relative thumbs/ path); returns how many were made.

    Folder thumbnails are listed in ``thumbs/THUMBS_MANIFEST`` before they are written, so that a render
    stopped half-way still leaves every file it made deletable by the next one. A file of the same name
    that labelaudit did not write is never replaced: that record gets an inline thumbnail instead."""
    made = 0
    thumbs = out / THUMBS_DIR
    ours: set[str] = set()
    if not inline and (thumbs.is_dir() or not thumbs.exists()):  # a file named thumbs: every thumbnail inline
        theirs = {p.name for p in thumbs.iterdir()} if thumbs.is_dir() else set()
        # A name already taken is ours only when it holds the very bytes we would write (a render from
        # before the manifest existed); anything else there is the user's.
        ours = {
            _thumb_name(r)
            for r in records
            if _thumb_name(r) not in theirs or _holds(thumbs / _thumb_name(r), thumbnail_bytes(r["path"]))
        }
        if ours:
            write_text_atomic(thumbs / THUMBS_MANIFEST, "".join(f"{name}\n" for name in sorted(ours)))
    for record in records:
        data = thumbnail_bytes(record["path"])
        if data is None:
            continue
        made += 1
        name = _thumb_name(record)
        if name in ours:
            write_atomic(thumbs / name, lambda tmp, data=data: tmp.write_bytes(data))
            record["thumb"] = f"{THUMBS_DIR}/{name}"
        else:
            record["thumb"] = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    return made


def _holds(path: Path, data: bytes | None) -> bool:
    try:
        return data is not None and path.is_file() and not path.is_symlink() and path.read_bytes() == data
    except OSError:
        return False


def _class_records(classes: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for row in classes.to_dict("records"):
        records.append(
            {
                "cls": _text(row["class"]),
                "name": _text(row.get("name")) or _text(row["class"]),
                "count": int(row["count"]),
                "flagged": int(row["flagged"]),
                "rate": _number(row.get("estimated_error_rate")) or 0.0,
                "confused": _text(row.get("confused_with")),
                "share": _number(row.get("confused_share")),
                "zs": _number(row.get("zeroshot_accuracy")),
            }
        )
    records.sort(key=lambda r: (-r["rate"], r["cls"] or ""))
    return records


def _pairs(samples: pd.DataFrame, summary: Summary, top: int = 10) -> list[dict[str, Any]]:
    pairs = summary.confused_pairs
    if pairs:
        return [dict(p) for p in pairs[:top]]
    flagged = samples[samples["is_issue"].astype(bool) & (samples["given_label"] != samples["suggested_label"])]
    counts = flagged.groupby(["given_label", "suggested_label"]).size().sort_values(ascending=False, kind="mergesort")
    return [{"given": str(g), "suggested": str(s), "count": int(n)} for (g, s), n in counts.head(top).items()]


def build_payload(
    samples: pd.DataFrame,
    classes: pd.DataFrame,
    summary: Summary,
    out: Path,
    *,
    inline_limit: int = INLINE_THUMB_LIMIT,
    top: int = TOP_RANKED,
    verify: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """``verify``: the items `labelaudit verify` drew, in queue order (the page's Verify section)."""
    methods = [str(m) for m in summary.methods]
    grid = select_rows(samples, top=top)
    clean = clean_rows(samples)
    # The per-class panel names its clean examples by id; only those not already in the grid travel as
    # records of their own. (Dropping those in the grid instead left the panel empty on any set of
    # <= TOP_RANKED samples, where every sample is in the grid.)
    clean_ids = [_text(i) for i in clean["sample_id"]]
    extra = clean[~clean["sample_id"].isin(grid["sample_id"])]
    rows = [_row_record(r, methods) for r in grid.to_dict("records")]
    clean_records = [_row_record(r, methods) for r in extra.to_dict("records")]
    verify_records = [_row_record(r, methods) for r in verify.to_dict("records")] if verify is not None else []
    modality = summary.dataset.modality
    thumbs_mode = "none"
    remove_written_thumbs(out / THUMBS_DIR)  # an earlier render's thumbnails, and nothing else in that folder
    if modality == "image":
        inline = len(rows) + len(clean_records) + len(verify_records) <= inline_limit
        thumbs_mode = "inline" if inline else "folder"
        _add_thumbs(rows + clean_records + verify_records, out, inline)
    class_list = [c["cls"] for c in _class_records(classes)]
    named = {}
    if "given_name" in samples.columns:  # a --classes file named the classes otherwise than their keys
        named = {"names": {c["cls"]: c["name"] for c in _class_records(classes) if c["cls"] is not None}}
    return {
        **named,
        "methods": methods,
        "modality": modality,
        "thumbs": thumbs_mode,
        "classes": sorted(c for c in class_list if c is not None),
        "classStats": _class_records(classes),
        "rows": rows,
        "clean": clean_records,
        "cleanIds": clean_ids,
        "verify": verify_records,
        "decisionColumns": DECISION_COLUMNS_LEADING
        + ["consensus_score", "suggested_prob"]
        + [f"{m}_score" for m in methods]
        + ["text", "content_hash"],
        # The browser keeps a reviewer's decisions under this key. The None stands where a created_at that no
        # summary ever had was read, so that pages rendered before and after keep the same key.
        "reportKey": hashlib.sha1(
            json.dumps([summary.dataset.to_json(), None, len(samples)], default=str).encode()
        ).hexdigest()[:12],
    }


def _overview(samples: pd.DataFrame, classes: list[dict[str, Any]], summary: Summary) -> str:
    dataset = summary.dataset
    rate = _number(summary.estimated_error_rate) or 0.0
    stats = [
        ("samples", f"{dataset.n_samples:,}"),
        ("classes", f"{dataset.n_classes:,}"),
        ("modality", dataset.modality),
        ("encoder", summary.encoder.description),
        ("methods", ", ".join(summary.methods)),
        ("estimated error rate", summary.error_rate_text() if summary.error_rate is not None else f"{rate:.2%}"),
        ("flagged", f"{summary.n_flagged or 0:,}"),
    ]
    if summary.error_rate is not None and summary.error_rate.power_auroc is not None:
        stats.insert(-1, ("audit power", summary.audit_power_text()))
    parts = ['<section id="overview"><h2>Overview</h2><dl class="stats">']
    for key, value in stats:
        parts.append(f'<div><dt>{escape(key)}</dt><dd data-stat="{escape(key)}">{escape(value)}</dd></div>')
    parts.append("</dl>")
    if summary.error_rate is not None:
        for warning in summary.error_rate.warnings:
            parts.append(f'<p class="estimate-note" role="note">{escape(warning)}</p>')
    # The audit's own warnings (class names that are codes, single-sample classes, skipped files): the terminal
    # says them once, and a reviewer who only opens the page must see them too.
    for warning in summary.warnings:
        parts.append(f'<p class="estimate-note audit-warning" role="note">{escape(warning)}</p>')

    top = classes[:40]
    peak = max([c["rate"] for c in top] + [1e-9])
    parts.append('<div class="panels"><div class="panel"><h3>Estimated error rate by class</h3>')
    if len(classes) > len(top):
        parts.append(f'<p class="muted">The {len(top)} worst of {len(classes)} classes.</p>')
    # A --classes file's names, where they differ from the keys (the report then has given_name).
    names = {c["cls"]: c["name"] for c in classes} if "given_name" in samples.columns else {}
    parts.append('<div class="bars" id="class-bars">')
    for c in top:
        width = 100.0 * c["rate"] / peak
        shown = names.get(c["cls"], c["cls"])
        label = escape(shown or "")
        tip = escape(f"{shown}: {c['rate']:.1%} estimated, {c['flagged']} of {c['count']} flagged")
        parts.append(
            f'<div class="bar-row" title="{tip}"><span class="bar-label">{label}</span>'
            f'<span class="bar-track"><span class="bar" style="width:{width:.1f}%"></span></span>'
            f'<span class="bar-value">{c["rate"]:.1%}</span></div>'
        )
    parts.append("</div></div>")

    pairs = _pairs(samples, summary)
    parts.append('<div class="panel"><h3>Most-confused class pairs</h3>')
    if pairs:
        givens = list(dict.fromkeys(p["given"] for p in pairs))
        suggs = list(dict.fromkeys(p["suggested"] for p in pairs))
        counts = {(p["given"], p["suggested"]): int(p["count"]) for p in pairs}
        most = max(counts.values())
        parts.append('<table class="heat" id="heatmap"><thead><tr><th class="corner">given ↓ / suggested →</th>')
        parts.extend(f'<th class="col"><span>{escape(str(names.get(s, s)))}</span></th>' for s in suggs)
        parts.append("</tr></thead><tbody>")
        for g in givens:
            parts.append(f'<tr><th class="rowh">{escape(str(names.get(g, g)))}</th>')
            for s in suggs:
                value = counts.get((g, s), 0)
                alpha = 0.12 + 0.88 * value / most if value else 0.0
                tip = escape(f"{names.get(g, g)} → {names.get(s, s)}: {value} flagged")
                cell = str(value) if value else ""
                parts.append(
                    f'<td title="{tip}" style="background:rgba(214,69,65,{alpha:.2f})"'
                    f' data-given="{escape(str(g))}" data-suggested="{escape(str(s))}">{cell}</td>'
                )
            parts.append("</tr>")
        parts.append('</tbody></table><p class="muted">Click a cell to filter the suspects by that pair.</p>')
    else:
        parts.append('<p class="muted">No flagged sample has a different suggested label.</p>')
    parts.append("</div></div></section>")
    return "".join(parts)


def render_html(
    samples: pd.DataFrame,
    classes: pd.DataFrame,
    summary: Summary,
    out: Path,
    *,
    inline_limit: int = INLINE_THUMB_LIMIT,
    top: int = TOP_RANKED,
    verify: pd.DataFrame | None = None,
) -> Path:
    """Write ``out/report.html`` (and ``out/thumbs/`` for large image reports); returns the page's path."""
    out = Path(out)
    payload = build_payload(samples, classes, summary, out, inline_limit=inline_limit, top=top, verify=verify)
    nav = '<a href="#overview">Overview</a><a href="#suspects">Suspects</a><a href="#per-class">Per class</a>' + (
        '<a href="#verify">Verify</a>' if payload["verify"] else ""
    )
    body = f"""{_overview(samples, payload["classStats"], summary)}
<section id="suspects"><h2>Suspects</h2>
<div class="controls">
<label>class <select id="f-class"><option value="">all classes</option></select></label>
<label>given → suggested <select id="f-pair"><option value="">all pairs</option></select></label>
<label>flagged by <select id="f-method"><option value="">any method</option></select></label>
<label>sort <select id="f-sort"><option value="asc">most suspect first</option>
<option value="desc">least suspect first</option></select></label>
<button type="button" id="download">Download decisions CSV</button>
</div>
<p class="muted"><span id="count"></span> · <span id="decided">0</span> decided</p>
<div class="grid" id="grid"></div>
<div class="pager"><button type="button" id="prev">‹ prev</button> <span id="page"></span>
<button type="button" id="next">next ›</button></div>
</section>
<section id="per-class"><h2>Per class</h2><p class="muted">Worst classes first; open one to see its suspects beside
its most confidently clean samples.</p><div id="class-list"></div></section>
{_verify_section(len(payload["verify"]))}
"""
    scripts = f"""<script type="application/json" id="labelaudit-data">{json_for_script(payload)}</script>
<script>{SCRIPT}</script>
"""
    return write_page(
        out,
        heading="labelaudit report",
        source=summary.dataset.source,
        csp="default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        style=STYLE,
        nav=nav,
        body=body,
        scripts=scripts,
    )


def write_page(
    out: Path,
    *,
    heading: str,
    source: str,
    csp: str,
    style: str,
    nav: str,
    body: str,
    scripts: str = "",
    head_extra: str = "",
) -> Path:
    """Write ``out/report.html``: the document both pages share (head, header with the data's source and the
    section links, main), around ``body``; returns the page's path."""
    title = f"{heading}: {source}" if source else heading
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{head_extra}<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{escape(title)}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{heading}</h1><p class="source">{escape(source)}</p>
<nav>{nav}</nav></header>
<main>
{body}</main>
{scripts}</body>
</html>
"""
    target = out / REPORT_HTML
    write_text_atomic(target, page)
    return target


def _verify_section(n: int) -> str:
    if not n:
        return ""
    return f"""<section id="verify"><h2>Verify</h2><p class="muted">{n} items drawn at random by
<code>labelaudit verify</code>. Mark each one: <b>right</b> (the given label is correct), <b>wrong</b> (pick the
correct class), <b>no class fits</b> (counts as wrong) or <b>unsure</b> (skipped). Then download the decisions
CSV above and run <code>labelaudit estimate REPORT --verified decisions.csv</code>. Decisions on other suspects
in the same file are not part of the sample and do not count.</p>
<p class="muted"><span id="verify-decided">0</span> of {n} marked</p><div class="grid" id="verify-grid"></div>
</section>"""


def render_report(folder: str | Path, **kwargs: Any) -> Path:
    """(Re)render ``report.html`` of a report folder written by ``labelaudit audit``, with a Verify section
    when `labelaudit verify` drew a sample of this report; a tag-set report gets its own page (html/tags.py)."""
    from ..report import load_report
    from ..verification import design_rows

    folder = Path(folder)
    samples, classes, summary = load_report(folder)
    if summary.multilabel is not None:  # tag sets: the single-label page would show joined tags as classes
        from .tags import render_tag_html

        return render_tag_html(samples, classes, summary, folder)
    kwargs.setdefault("verify", design_rows(folder, samples))
    return render_html(samples, classes, summary, folder, **kwargs)
