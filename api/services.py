"""What the routers use, built once by the composition root (``api.app.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from adapters.settings import Settings
from adapters.signing import SigningKey
from api.auth import TokenAuthority
from domain.authorization import Authorizer
from domain.ledger import Ledger
from domain.ports import Clock, PasswordHasher, UnitOfWork
from projections.read_models import ReadModels

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
    read_models: ReadModels | None = None
    signing_key: SigningKey | None = None
    authorizer: Authorizer | None = None  # set when TILL_ACQUIRER_URL names a host

    def views(self) -> ReadModels:
        if self.read_models is None:
            raise RuntimeError("this process was built without read models")
        return self.read_models

    def close(self) -> None:
        self.executor.stop()
        if self.read_models is not None:
            self.read_models.close()
        self.ledger.close()
