"""Multi-label audits: every (sample, tag) pair of a dataset whose samples carry tag sets.

- ``tags``: reading tag sets (a list column, a delimited text column, one-hot columns) into a class list and an
  (N, K) bool matrix, and writing them back. Pure functions, no torch.
- ``scorers``: the four kinds of evidence per pair (cross-validated probe + cleanlab, kNN, zero-shot, DeFT),
  each giving P(tag present) and missing/spurious flags, all out-of-sample.
- ``combine``: the consensus, the calibrated error-rate estimate and the decisions (suggested tag sets).
- ``audit.audit_tags``: all of it in one call; ``tables.report_tables``: the report's DataFrames.

Importing this package loads neither torch nor sklearn; the scorers load them when they run.
"""

from __future__ import annotations

from .tags import TagMatrix, parse_onehot, parse_tag_column, tags_to_column

__all__ = ["TagMatrix", "parse_onehot", "parse_tag_column", "tags_to_column"]
