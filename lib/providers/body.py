"""The limits every provider answer's body is read under: a cap on its decoded size and a time by which
it must have arrived whole, so a huge, inflating or dripping answer cannot hold a worker or its memory.
Shared by both transports (lib/providers/http.py's urllib3 path and lib/providers/wire.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.errors import ProviderResponseError, ProviderTimeout

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """An answer read whole: what both transports of the API calls return."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class BodyLimit:
    """At most `max_bytes` decoded bytes, whole by `read_by` (time.monotonic); `what` names the call."""

    what: str
    max_bytes: int
    read_by: float

    def check_declared(self, headers: Mapping[str, str]) -> None:
        """Refuse an answer that announces more than the cap before any of it is read."""
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ProviderResponseError(
                f"{self.what} answered with {int(declared)} bytes, over the {self.max_bytes} limit"
            )

    def check_progress(self, decoded_so_far: int) -> None:
        """After each piece: still under the cap, and still in time."""
        if decoded_so_far > self.max_bytes:
            self.over_cap()
        if time.monotonic() > self.read_by:
            raise ProviderTimeout(f"{self.what} was too slow to send its answer")

    def over_cap(self) -> None:
        raise ProviderResponseError(f"{self.what} answered with more than {self.max_bytes} bytes (decoded)")


def read_body(raw: BaseHTTPResponse, headers: Mapping[str, str], limit: BodyLimit) -> bytes:
    """A urllib3 answer's body, read in pieces under `limit` (urllib3 inflates only as far as asked)."""
    limit.check_declared(headers)
    chunks: list[bytes] = []
    size = 0
    while chunk := raw.read1(CHUNK_BYTES, decode_content=True):
        size += len(chunk)
        limit.check_progress(size)
        chunks.append(chunk)
    return b"".join(chunks)
