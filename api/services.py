"""What the routers use, built once by the composition root (``api.app.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from adapters.settings import Settings
from api.auth import TokenAuthority
from domain.ledger import Ledger
from domain.ports import Clock, PasswordHasher, UnitOfWork

R = TypeVar("R")


class Executor(Protocol):
    async def submit(self, command: Any) -> Any: ...

    def run(self, command: Any) -> Any: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    executor: Executor
    clock: Clock
    hasher: PasswordHasher
    tokens: TokenAuthority
