"""``report.html`` of a tag-set (multi-label) report: a static page, no script.

The single-label page reads one given and one suggested class per sample, filters by "given → suggested"
pairs and downloads relabel decisions; on tag sets all three would be wrong (a class filter listing
"food|weather", a confusion heat map of joined tag strings, ``relabel:food|sports`` decisions). This page
shows what a tag-set audit found instead: per sample the given, suggested, missing and spurious tags, per
class the missing and spurious rates, and both error rates by their names. Review goes through
``labelaudit export REPORT --to csv`` (add/remove decisions). Every data string passes through
:func:`html.escape`.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from ..summary import MultilabelSummary, Summary
from .assets import STYLE

TAG_PAGE_MARKER = '<meta name="labelaudit-page" content="tag-set">'  # how `view` tells this page from the other
TAG_STYLE = """
table.tags { border-collapse: collapse; width: 100%; font-size: 0.9em; }
table.tags th, table.tags td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
table.tags td.num { text-align: right; font-variant-numeric: tabular-nums; }
span.tag { display: inline-block; padding: 0 5px; margin: 1px; border-radius: 3px; background: #eee; }
span.tag.missing { background: #d8f0d8; }
span.tag.spurious { background: #f6d5d3; text-decoration: line-through; }
"""


def _tags(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(t) for t in list(value)]


def _tag_spans(tags: list[str], kind: str = "") -> str:
    if not tags:
        return '<span class="muted">none</span>'
    css = f"tag {kind}".strip()
    return " ".join(f'<span class="{css}">{escape(t)}</span>' for t in tags)


def _percent(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(number) else f"{number:.1%}"


def _overview(summary: Summary, tags: MultilabelSummary, n_flagged: int) -> str:
    dataset = summary.dataset
    stats = [
        ("samples", f"{dataset.n_samples:,}"),
        ("classes (tags)", f"{dataset.n_classes:,}"),
        ("modality", dataset.modality),
        ("encoder", summary.encoder.description),
        ("methods", ", ".join(summary.methods)),
        ("estimated sample error rate", f"{tags.estimated_sample_error_rate:.2%}"),
        ("estimated pair error rate", f"{tags.estimated_pair_error_rate:.2%}"),
        ("samples flagged", f"{n_flagged:,}"),
        ("tags flagged missing", f"{tags.n_flagged_missing:,}"),
        ("tags flagged spurious", f"{tags.n_flagged_spurious:,}"),
    ]
    parts = ['<section id="overview"><h2>Overview</h2><dl class="stats">']
    for key, value in stats:
        parts.append(f'<div><dt>{escape(key)}</dt><dd data-stat="{escape(key)}">{escape(value)}</dd></div>')
    parts.append("</dl>")
    parts.append(
        f'<p class="muted">Sample error rate: {escape(tags.sample_error_rate_definition)}. Pair error rate: '
        f"{escape(tags.pair_error_rate_definition)} ({tags.n_pairs_judged:,} pairs judged; "
        f"{tags.estimated_missing_share:.2%} of the absent pairs look missing, "
        f"{tags.estimated_spurious_share:.2%} of the given ones spurious).</p>"
    )
    parts.append(
        '<p class="muted">To review, write a queue with add/remove decisions: '
        "<code>labelaudit export REPORT --to csv</code> (or <code>--to labelstudio</code>, <code>--to cvat</code>), "
        "then <code>labelaudit apply</code>. The full table is report.csv.</p></section>"
    )
    return "".join(parts)


def _class_table(classes: pd.DataFrame) -> str:
    parts = [
        '<section id="per-class"><h2>Per class</h2><p class="muted">Missing rate: flagged missing ÷ samples not '
        "given the tag. Spurious rate: flagged spurious ÷ samples given it. Most flagged first.</p>"
        '<table class="tags" id="class-table"><thead><tr><th>class</th><th>given</th><th>suggested</th>'
        "<th>flagged missing</th><th>missing rate</th><th>flagged spurious</th><th>spurious rate</th>"
        "<th>judged</th></tr></thead><tbody>"
    ]
    for row in classes.to_dict("records"):
        name = row.get("name") or row["class"]
        judged = "yes" if bool(row.get("judged", True)) else "no (too few given positives or negatives)"
        parts.append(
            f'<tr data-class="{escape(str(row["class"]))}"><td>{escape(str(name))}</td>'
            f'<td class="num">{int(row["count"])}</td><td class="num">{int(row["suggested_count"])}</td>'
            f'<td class="num">{int(row["flagged_missing"])}</td><td class="num">{_percent(row["missing_rate"])}</td>'
            f'<td class="num">{int(row["flagged_spurious"])}</td><td class="num">{_percent(row["spurious_rate"])}</td>'
            f"<td>{escape(judged)}</td></tr>"
        )
    parts.append("</tbody></table></section>")
    return "".join(parts)


def _sample_table(rows: pd.DataFrame, n_samples: int) -> str:
    parts = [
        f'<section id="suspects"><h2>Suspects</h2><p class="muted">Every flagged sample and the most suspect '
        f"others: {len(rows):,} of {n_samples:,}, most suspect first. Quality is low for a suspect tag set.</p>"
        '<table class="tags" id="suspect-table"><thead><tr><th>rank</th><th>sample</th><th>content</th>'
        "<th>given tags</th><th>suggested tags</th><th>missing</th><th>spurious</th><th>quality</th>"
        "<th>flagged</th></tr></thead><tbody>"
    ]
    for row in rows.to_dict("records"):
        content = row.get("text") if isinstance(row.get("text"), str) else row.get("path")
        content = "" if content is None or (isinstance(content, float) and math.isnan(content)) else str(content)
        if len(content) > 200:
            content = content[:200] + "…"
        parts.append(
            f'<tr data-sample="{escape(str(row["sample_id"]))}"><td class="num">{int(row["rank"])}</td>'
            f"<td>{escape(str(row['sample_id']))}</td><td>{escape(content)}</td>"
            f"<td>{_tag_spans(_tags(row['given_tags']))}</td><td>{_tag_spans(_tags(row['suggested_tags']))}</td>"
            f"<td>{_tag_spans(_tags(row['missing_tags']), 'missing')}</td>"
            f"<td>{_tag_spans(_tags(row['spurious_tags']), 'spurious')}</td>"
            f'<td class="num">{float(row["quality"]):.3f}</td><td>{"yes" if bool(row["is_issue"]) else ""}</td></tr>'
        )
    parts.append("</tbody></table></section>")
    return "".join(parts)


def render_tag_html(samples: pd.DataFrame, classes: pd.DataFrame, summary: Summary, out: Path) -> Path:
    """Write ``out/report.html`` for a tag-set report; returns the page's path."""
    from . import THUMBS_DIR, remove_written_thumbs, select_rows, write_page

    tags = summary.multilabel
    if tags is None:
        raise ValueError("render_tag_html needs a tag-set report (summary.multilabel)")
    out = Path(out)
    remove_written_thumbs(out / THUMBS_DIR)  # a single-label render's thumbnails, if this folder had one
    n_flagged = summary.n_flagged if summary.n_flagged is not None else int(samples["is_issue"].sum())
    body = f"""{_overview(summary, tags, n_flagged)}
{_class_table(classes)}
{_sample_table(select_rows(samples), len(samples))}
"""
    return write_page(
        out,
        heading="labelaudit tag-set report",
        source=summary.dataset.source,
        csp="default-src 'none'; style-src 'unsafe-inline'",
        style=STYLE + TAG_STYLE,
        nav='<a href="#overview">Overview</a><a href="#per-class">Per class</a><a href="#suspects">Suspects</a>',
        body=body,
        head_extra=f"{TAG_PAGE_MARKER}\n",
    )
