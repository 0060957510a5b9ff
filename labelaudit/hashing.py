"""Content hashes: what the embedding cache, the score cache and `apply` recognise a sample by.

blake2b with a 16-byte digest, as hex: a file's bytes for an image, the decoded UTF-8 text for a text sample
(so a BOM or the file's encoding does not change a text's identity).
"""

from __future__ import annotations

import hashlib
from typing import IO

DIGEST_SIZE = 16
CHUNK_BYTES = 1 << 20


def hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).hexdigest()


def hash_text(text: str) -> str:
    return hash_bytes(text.encode("utf-8"))


def hash_stream(handle: IO[bytes], chunk_size: int = CHUNK_BYTES) -> str:
    """The hash of everything left in a binary stream, read a chunk at a time (large files stay out of memory)."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    while chunk := handle.read(chunk_size):
        digest.update(chunk)
    return digest.hexdigest()
