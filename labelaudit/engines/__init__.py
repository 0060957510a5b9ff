"""Execution engines for the embedding stage.

``local`` (the default) embeds in this process with DataLoader workers (``labelaudit.embed``); ``ray`` runs
decoding and embedding on a Ray cluster (``labelaudit.engines.ray_engine``). Both read and write the same
content-hash embedding cache, and everything after embedding runs on the driver unchanged. Importing this
package never imports ray.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import LabelAuditError

ENGINES = ("local", "ray")
RAY_INSTALL_HINT = 'pip install "labelaudit[ray]"  (or: pip install "ray[data]>=2.9")'


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise LabelAuditError(f"unknown --engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    return engine


def require_ray() -> ModuleType:
    """Import ray (with Ray Data), or explain how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise LabelAuditError(
            f"--engine ray needs the optional Ray extra, which is not installed ({exc}). Install it with: "
            f"{RAY_INSTALL_HINT}"
        ) from None
    return ray
