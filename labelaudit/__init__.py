"""labelaudit: find wrong labels in a labelled dataset before anyone trains on it.

>>> import labelaudit
>>> result = labelaudit.audit("sample_data/text", out="reports/text")
>>> result.samples.head()          # ranked, most suspect first
>>> result.estimated_error_rate
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = ["AuditConfig", "AuditResult", "__version__", "audit"]

if TYPE_CHECKING:
    from .config import AuditConfig
    from .pipeline import AuditResult, audit

_LAZY = {"audit": "pipeline", "AuditResult": "pipeline", "AuditConfig": "config"}


def __getattr__(name: str) -> Any:
    # Loaded on first use, so `import labelaudit` stays fast; torch loads only when an audit embeds.
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labelaudit' has no attribute {name!r}")
