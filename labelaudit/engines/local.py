"""The default engine: embed in this process (images decode in DataLoader workers), folds one after another."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..scorers import FoldRunner, SerialFolds

if TYPE_CHECKING:
    from ..cache import EmbeddingCache
    from ..config import EngineSpec
    from ..embed import EmbeddingResult
    from ..progress import Reporter
    from . import EmbedJob


class LocalEngine:
    name = "local"

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    def check(self) -> None:
        pass

    @contextlib.contextmanager
    def session(self) -> Iterator[FoldRunner]:
        yield SerialFolds()

    def embed(self, job: EmbedJob, reporter: Reporter) -> EmbeddingResult:
        from ..embed import embed_samples

        spec = job.spec
        return embed_samples(
            job.samples,
            job.modality,
            job.encoder,
            job.cache,
            batch_size=spec.batch_size,
            workers=spec.workers,
            max_pixels=spec.max_pixels,
            reporter=reporter,
        )

    def saved_note(self, cache: EmbeddingCache) -> str:
        return f"{cache.stored_rows:,} new embedding(s) were saved in the cache ({cache.folder})."


ENGINE = LocalEngine
