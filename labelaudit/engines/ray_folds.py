"""The Ray session of an ``--engine ray`` audit, and per-fold scoring jobs as Ray tasks.

One session spans embedding and scoring, so a local Ray starts once per audit. The cross-validated
probe of the ``confident`` scorer is the scoring step that grows heavy at scale; its folds are
independent, so each becomes a task. The large arrays go to the object store once and every task
reads them from there (zero-copy on the same node).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import LabelAuditError
from . import require_ray


@contextlib.contextmanager
def ray_session(address: str | None, runtime_env: dict[str, Any]) -> Iterator[ModuleType]:
    """Use the Ray already initialised in this process, or start/join one and shut it down afterwards."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(
            address=None if address in (None, "local") else address,
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
    except Exception as exc:  # a wrong address or an unreachable head node
        raise LabelAuditError(f"cannot start or reach Ray (--ray-address {address}): {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class RayFolds:
    """A ``FoldRunner`` that runs each job as a Ray task (one CPU each); results come back in job order."""

    where = "ray"

    def __init__(self, ray: ModuleType) -> None:
        self.ray = ray
        self.submitted = 0

    def map(
        self,
        function: Callable[..., Any],
        shared: dict[str, np.ndarray],
        jobs: list[dict[str, Any]],
        task: Any | None = None,
    ) -> list[Any]:
        ray = self.ray
        refs = {name: ray.put(value) for name, value in shared.items()}
        remote = ray.remote(num_cpus=1, max_retries=3)(function)  # a worker lost mid-fold is retried
        pending = {remote.remote(**refs, **job): i for i, job in enumerate(jobs)}
        self.submitted += len(pending)
        results: list[Any] = [None] * len(jobs)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
                if task is not None:
                    task.advance()
        return results
