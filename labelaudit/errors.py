"""Errors a user can act on. The CLI turns these into a message and exit code 2, never a traceback."""

from __future__ import annotations


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
