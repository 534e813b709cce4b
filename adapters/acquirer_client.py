"""AcquirerHost over TCP: ISO 8583 (adapters.iso8583_spec) to the acquirer's authorization host.

One short connection per exchange, as a CUP terminal dials: connect, send one request, read until
its reply comes, close. What can go wrong splits by whether the request may have reached the host:

* the connection cannot be made (refused, unreachable, connect timeout): ``AcquirerUnavailable``,
  nothing was sent, nothing was charged;
* once the request is written, no reply in ``timeout_s``, the connection closed or reset, or a frame
  that does not decode: ``AcquirerNoReply``, the outcome is unknown (the caller reverses).

A reply for another request (wrong MTI, STAN or terminal; a stale or duplicated answer) is logged
and skipped, and reading goes on: it can never be taken for this request's answer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from adapters.iso8583_messages import (
    answers,
    decode_host_reply,
    decode_reversal_reply,
    decode_settlement_reply,
    decode_sign_on_reply,
    encode_financial,
    encode_reversal,
    encode_settlement,
    encode_sign_on,
)
from adapters.iso8583_spec import Message, MessageError, pack, read_frame, unpack, write_frame
from adapters.metrics import record_acquirer_exchange
from domain.acquirer import (
    APPROVED,
    AcquirerNoReply,
    AcquirerUnavailable,
    FinancialRequest,
    HostReply,
    ReversalReply,
    ReversalRequest,
    SettlementReply,
    SettlementRequest,
    SignOnReply,
    SignOnRequest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


def _trace() -> str:
    # Sign-on and settlement carry a STAN the port does not give: any 6 digits do, the host only echoes it.
    return f"{secrets.randbelow(999_999) + 1:06d}"


class Iso8583AcquirerHost:
    """The acquirer host at host:port, one TCP connection per exchange."""

    def __init__(self, host: str, port: int, *, timeout_s: float, connect_timeout_s: float = 3.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s

    def __repr__(self) -> str:
        return f"Iso8583AcquirerHost({self.host!r}, {self.port}, timeout_s={self.timeout_s})"

    async def sign_on(self, request: SignOnRequest) -> SignOnReply:
        return await self._exchange("sign_on", encode_sign_on(request, _trace()),
                                    lambda reply: decode_sign_on_reply(reply, request.local_time))

    async def authorize(self, request: FinancialRequest) -> HostReply:
        return await self._exchange("authorize", encode_financial(request), decode_host_reply)

    async def reverse(self, request: ReversalRequest) -> ReversalReply:
        return await self._exchange("reverse", encode_reversal(request), decode_reversal_reply)

    async def settle(self, request: SettlementRequest) -> SettlementReply:
        return await self._exchange("settle", encode_settlement(request, _trace()), decode_settlement_reply)

    async def _exchange(self, operation: str, request: Message, decode: Callable[[Message], T]) -> T:
        """``_send`` timed and counted by outcome (adapters.metrics)."""
        started, outcome = time.perf_counter(), "error"
        try:
            reply = await self._send(request, decode)
            # A reversal is acknowledged with 00 or 25 (nothing to reverse): both settle it.
            ok = getattr(reply, "acknowledged", getattr(reply, "response_code", None) == APPROVED)
            outcome = "approved" if ok else "declined"
            return reply
        except AcquirerUnavailable:
            outcome = "unreachable"
            raise
        except AcquirerNoReply as exc:
            outcome = "timeout" if isinstance(exc.__cause__, TimeoutError) else "error"
            raise
        finally:
            record_acquirer_exchange(operation, outcome, time.perf_counter() - started)

    async def _send(self, request: Message, decode: Callable[[Message], T]) -> T:
        body = pack(request)  # a message that cannot be encoded is a ValueError before dialling
        what = f"{request['t']} STAN {request['11']} terminal {request['41']}"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                    self.connect_timeout_s)
        except (OSError, TimeoutError) as exc:  # TimeoutError is an OSError too; named for the reader
            raise AcquirerUnavailable(f"cannot reach the acquirer host at {self.host}:{self.port} ({what} "
                                      "was not sent)") from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                await write_frame(writer, body)
                return decode(await self._reply_to(request, reader))
        except TimeoutError as exc:
            raise AcquirerNoReply(f"no reply to {what} within {self.timeout_s} s; the outcome is unknown") from exc
        except (OSError, ValueError) as exc:  # ValueError: a reply that does not decode (MessageError)
            raise AcquirerNoReply(f"the exchange for {what} broke off ({type(exc).__name__}); "
                                  "the outcome is unknown") from exc
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    async def _reply_to(self, request: Message, reader: asyncio.StreamReader) -> Message:
        while True:
            frame = await read_frame(reader)
            if frame is None:
                raise MessageError("the host closed the connection without a reply")
            reply = unpack(frame)
            if answers(request, reply):
                log.info("acquirer reply mti=%s stan=%s terminal=%s response=%s", reply.get("t"), reply.get("11"),
                         reply.get("41"), reply.get("39"))
                return reply
            # A stale or duplicated answer to some other exchange: never this request's outcome.
            log.info("ignored a reply that is not for this request: mti=%s stan=%s terminal=%s response=%s "
                     "(expected stan=%s terminal=%s)", reply.get("t"), reply.get("11"), reply.get("41"),
                     reply.get("39"), request["11"], request["41"])
