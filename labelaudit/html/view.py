"""`labelaudit view`: make sure report.html exists, then open it in a browser or serve it on loopback."""

from __future__ import annotations

import functools
import http.server
import webbrowser
from pathlib import Path

from ..errors import LabelAuditError
from ..io import refuse_incomplete_report
from . import REPORT_HTML, render_report

LOOPBACK = "127.0.0.1"


def ensure_page(folder: str | Path, rerender: bool = False) -> tuple[Path, bool]:
    """The report's page, rendered first when missing (or when ``rerender``); also whether it was rendered."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelAuditError(f"{folder} is not a folder: pass the --out folder of `labelaudit audit`")
    page = folder / REPORT_HTML
    # The page may be from the run that was stopped or from the one before: neither matches the tables.
    refuse_incomplete_report(folder)
    if page.is_file() and not rerender and not _stale_tag_page(folder, page):
        return page, False
    return render_report(folder), True


def _stale_tag_page(folder: Path, page: Path) -> bool:
    """A tag-set report whose report.html is the single-label page (rendered by a labelaudit before tag-set
    pages existed): that page shows joined tag sets as classes, so it is rendered again."""
    from ..report import load_summary
    from .tags import TAG_PAGE_MARKER

    if load_summary(folder).multilabel is None:
        return False
    try:
        return TAG_PAGE_MARKER not in page.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def make_server(folder: str | Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the report folder bound to 127.0.0.1 only (``port`` 0 picks a free one)."""
    handler = functools.partial(_QuietHandler, directory=str(Path(folder).resolve()))
    try:
        return http.server.ThreadingHTTPServer((LOOPBACK, port), handler)
    except OSError as exc:
        raise LabelAuditError(f"cannot serve on {LOOPBACK}:{port}: {exc}") from None


def page_url(server: http.server.ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/{REPORT_HTML}"


def open_page(target: str) -> bool:
    """Open ``target`` (a path or URL) in the default browser; False when none could be started."""
    url = target if target.startswith("http") else Path(target).resolve().as_uri()
    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False
