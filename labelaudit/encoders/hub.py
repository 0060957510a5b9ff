"""The model hub, asked as little and as briefly as possible: a missing model must fail in seconds, not minutes.

Without a network the Hugging Face client retries each request with growing pauses (79 s of "Retrying in
8s" before an audit could say what to do), so before any download labelaudit checks once, with a short
timeout, that the hub answers at all; when it does not, the caller fails at once with its advice.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

HUB_PROBE_TIMEOUT_S = 3.0  # DNS and TCP connect together; a reachable hub answers in well under a second


def offline() -> bool:
    """The user said so: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set."""
    return any(
        os.environ.get(key, "").lower() in {"1", "true", "yes", "on"}
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_cache_dir() -> str:
    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )


def hub_endpoint() -> tuple[str, int]:
    """Host and port of the hub the client would call (HF_ENDPOINT, else huggingface.co)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout_s``. Name resolution has no timeout of its
    own, so the attempt runs on a daemon thread that is abandoned when the time is up."""
    host, port = hub_endpoint()
    answered: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=attempt, name="labelaudit-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answered and answered[0])
