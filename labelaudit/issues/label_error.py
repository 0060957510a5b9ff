"""Label errors (the ``label_error`` issue type): the samples the consensus of the label scorers flags.

The scorers and their consensus (labelaudit.scorers, labelaudit.consensus) do the work; this check only puts
their verdict beside the other issue types. Its count and rows are the report's "flagged" figures, so it
adds no columns, no summary section and no terminal row of its own.
"""

from __future__ import annotations

from . import IssueInputs, IssueResult


class LabelErrorCheck:
    name = "label_error"
    summary_key = None
    table_name = None

    def find(self, inputs: IssueInputs) -> IssueResult:
        return IssueResult(flags=inputs.label_errors)

    def terminal_row(self, count: int) -> tuple[str, str] | None:
        return None


CHECK = LabelErrorCheck
