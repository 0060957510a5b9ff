"""Errors a user can act on. The CLI turns these into a message and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


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


def io_reason(exc: BaseException) -> str:
    """Why a file could not be read, in the same words wherever it is said (discovery's skipped files, the
    embedder's, a damaged report): "permission denied", "file not found", the system's own words for other
    I/O errors ("input/output error"), else the first line of the message."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# Set while the command line runs: its messages name flags (--path-col); a Python caller's name keywords.
SPEAKING_TO_CLI: ContextVar[bool] = ContextVar("SPEAKING_TO_CLI", default=False)
# Flags whose keyword is not the flag's own name with "_" for "-".
KEYWORD_OF_FLAG = {
    "--classes": "classes_file=",
    "--no-cache": "cache_dir=None",
    "--overwrite": "overwrite=True",
    "--allow-outside-root": "allow_outside_root=True",
    "--split-by-class": "split_by_class=True",
    "--dry-run": "dry_run=True",
    "--allow-different-baseline": "allow_different_baseline=True",
}
_FLAG = re.compile(r"(?<![\w/.\-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def in_python_terms(message: str, keywords: dict[str, str] | None = None) -> str:
    """``message`` as a Python caller reads it: ``--path-col`` becomes ``path_col=``. A command quoted in
    backticks (`labelaudit verify R --overwrite`) is left as is: it is meant to be typed in a shell."""
    known = {**KEYWORD_OF_FLAG, **(keywords or {})}
    parts = message.split("`")
    for i in range(0, len(parts), 2):  # the even parts are outside backticks
        parts[i] = _FLAG.sub(lambda m: known.get(m.group(0), m.group(1).replace("-", "_") + "="), parts[i])
    return "`".join(parts)


@contextmanager
def keyword_errors(keywords: dict[str, str] | None = None) -> Iterator[None]:
    """Re-raise a LabelAuditError from inside the block in Python terms, unless the command line is running.
    ``keywords``: flag -> keyword where this function's keyword differs (``--classes`` -> ``classes=``)."""
    try:
        yield
    except LabelAuditError as exc:
        if SPEAKING_TO_CLI.get() or len(exc.args) != 1 or not isinstance(exc.args[0], str):
            raise
        translated = in_python_terms(exc.args[0], keywords)
        if translated == exc.args[0]:
            raise
        # A copy with the new message, not ``type(exc)(translated)``: a kind may take other arguments
        # (DecisionError's problems and source), and its attributes must survive.
        again = type(exc).__new__(type(exc))
        again.__dict__.update(exc.__dict__)
        again.args = (translated,)
        raise again from None


def speaks_python(**keywords: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorates a public API function: its LabelAuditErrors name keywords (``top=``), not the CLI's flags
    (``--top``); the command line, which sets SPEAKING_TO_CLI, still reads flags. ``keywords``: flag name
    (``classes``) -> this function's keyword for it, where it is neither the flag's own name nor
    KEYWORD_OF_FLAG's."""
    own = {f"--{flag.replace('_', '-')}": keyword for flag, keyword in keywords.items()}

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(function)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with keyword_errors(own):
                return function(*args, **kwargs)

        return wrapper

    return decorate
