"""A lean HTTP/1.1 keep-alive connection for the simulated terminals: POST a JSON body, get status + JSON.

Why not httpx here: on a 2-core machine the load shares the CPU with the service and PostgreSQL, and
httpx's client costs ~1 ms of CPU per request (its pool, its models), which caps the load at a few
hundred appends/s. This costs a tenth of that: the request is one pre-encoded write, the reply's
status line, Content-Length and body are all that is read. Any transport trouble (refused, reset,
timed out, unparsable) is ``NoAnswer``; the connection is then dropped and made again next time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


class NoAnswer(Exception):
    """No complete HTTP answer: the request may or may not have been applied."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class HttpConnection:
    def __init__(self, host: str, port: int, *, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: bytes = b"") -> Answer:
        """``headers``: extra header lines, each ending in CRLF (e.g. Authorization)."""
        request = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n" + headers
                   + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                   + body)
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
                assert self._reader is not None
                self._writer.write(request)
                head = await self._reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 "):
                    raise NoAnswer(f"not an HTTP reply: {head[:40]!r}")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"\r\ncontent-length:")
                if at < 0:
                    raise NoAnswer("a reply without Content-Length")
                length = int(lower[at + 17:lower.index(b"\r\n", at + 2)])
                body = await self._reader.readexactly(length) if length else b""
                if b"\r\nconnection: close" in lower:
                    await self.close()
                return Answer(status, body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.close()
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, asyncio.IncompleteReadError):
                pass
