"""The default engine: embed in this process (images decode in DataLoader workers), folds one after another."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..scorers import FoldRunner, SerialFolds

if TYPE_CHECKING:
    import pandas as pd

    from ..cache import EmbeddingCache
    from ..config import EmbedSpec, EncoderSpec, EngineSpec
    from ..embed import EmbeddingResult
    from ..encoders import Encoder
    from ..progress import Reporter


class LocalEngine:
    name = "local"

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    def check(self) -> None:
        pass

    @contextlib.contextmanager
    def session(self) -> Iterator[FoldRunner]:
        yield SerialFolds()

    def embed(
        self,
        samples: pd.DataFrame,
        modality: str,
        encoder: Encoder,
        cache: EmbeddingCache,
        spec: EmbedSpec,
        rebuild: EncoderSpec | None,
        reporter: Reporter,
    ) -> EmbeddingResult:
        from ..embed import embed_samples

        return embed_samples(
            samples,
            modality,
            encoder,
            cache,
            batch_size=spec.batch_size,
            workers=spec.workers,
            max_pixels=spec.max_pixels,
            reporter=reporter,
        )

    def saved_note(self, cache: EmbeddingCache) -> str:
        return f"{cache.stored_rows:,} new embedding(s) were saved in the cache ({cache.folder})."


ENGINE = LocalEngine
