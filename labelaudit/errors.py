"""Errors a user can act on. The CLI turns these into a message and exit code 2, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class LabelAuditError(Exception):
    """A problem with the user's input or settings, with a message that says what to do next."""


class DataError(LabelAuditError):
    """The dataset cannot be read as given (missing folder, bad manifest, too few classes...)."""


class ModelUnavailableError(LabelAuditError):
    """Encoder weights cannot be had (offline, unknown tag, unreadable checkpoint)."""


class AuditInterrupted(KeyboardInterrupt):
    """Ctrl-C during an audit; the message says what was saved and how to resume. A KeyboardInterrupt,
    so code that stops on Ctrl-C still does."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, CI runners and `docker stop` send) during an audit: handled like Ctrl-C (what
    was saved is said, the partial cache shard is kept), and the command exits 143 as a killed one would."""


# Set while the command line runs: its messages name flags (--path-col); a Python caller's name keywords.
SPEAKING_TO_CLI: ContextVar[bool] = ContextVar("SPEAKING_TO_CLI", default=False)
# Flags whose keyword is not the flag's own name with "_" for "-".
KEYWORD_OF_FLAG = {
    "--classes": "classes_file=",
    "--no-cache": "cache_dir=None",
    "--overwrite": "overwrite=True",
    "--allow-outside-root": "allow_outside_root=True",
}
_FLAG = re.compile(r"(?<![\w/.\-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def in_python_terms(message: str) -> str:
    """``message`` as a Python caller reads it: ``--path-col`` becomes ``path_col=``."""
    return _FLAG.sub(lambda m: KEYWORD_OF_FLAG.get(m.group(0), m.group(1).replace("-", "_") + "="), message)


@contextmanager
def keyword_errors() -> Iterator[None]:
    """Re-raise a LabelAuditError from inside the block in Python terms, unless the command line is running."""
    try:
        yield
    except LabelAuditError as exc:
        if SPEAKING_TO_CLI.get() or len(exc.args) != 1 or not isinstance(exc.args[0], str):
            raise
        translated = in_python_terms(exc.args[0])
        if translated == exc.args[0]:
            raise
        raise type(exc)(translated) from None
