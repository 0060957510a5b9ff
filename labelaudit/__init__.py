"""labelaudit: find wrong labels in a labelled dataset before anyone trains on it.

>>> import labelaudit
>>> result = labelaudit.audit("sample_data/text", out="reports/text")
>>> result.samples.head()          # ranked, most suspect first
>>> result.estimated_error_rate
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AuditResult", "__version__", "audit"]

if TYPE_CHECKING:
    from .pipeline import AuditResult, audit


def __getattr__(name: str) -> Any:
    # torch and open_clip load only when an audit runs, so `import labelaudit` and `--help` stay fast.
    if name in ("audit", "AuditResult"):
        from . import pipeline

        value = getattr(pipeline, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labelaudit' has no attribute {name!r}")
