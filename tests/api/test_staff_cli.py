"""`till user` against a real store: open an account, change its password, disable and enable it."""

from __future__ import annotations

import pytest

from adapters.settings import Settings
from api.cli import main
from domain.errors import StaffCredentialsInvalid
from tests.conftest import SteppingClock, fast_hasher, make_services, point_env_at


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    point_env_at(settings, monkeypatch)
    return settings


def sign_in_works(settings: Settings, name: str, password: str) -> bool:
    services = make_services(settings, SteppingClock())
    try:
        services.ledger.verify_staff(name, password, fast_hasher())
        return True
    except StaffCredentialsInvalid:
        return False
    finally:
        services.close()


def test_user_add_passwd_disable_and_enable_change_who_may_sign_in(
        env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_NEW_PASSWORD", "first password!")
    assert main(["user", "add", "li.kuaiji", "--role", "accountant", "--display-name", "李会计"]) == 0
    assert "li.kuaiji (accountant) opened" in capsys.readouterr().out
    assert sign_in_works(env, "li.kuaiji", "first password!")

    monkeypatch.setenv("TILL_NEW_PASSWORD", "second password!")
    assert main(["user", "passwd", "li.kuaiji"]) == 0
    assert not sign_in_works(env, "li.kuaiji", "first password!")
    assert main(["user", "disable", "li.kuaiji", "--reason", "left"]) == 0
    assert not sign_in_works(env, "li.kuaiji", "second password!")
    assert main(["user", "enable", "li.kuaiji"]) == 0
    assert sign_in_works(env, "li.kuaiji", "second password!")


def test_user_add_refuses_a_short_password_and_a_taken_name_with_the_stable_code(
        env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_NEW_PASSWORD", "short")
    assert main(["user", "add", "ana", "--role", "dispute"]) == 2
    assert "invalid_input" in capsys.readouterr().err
    monkeypatch.setenv("TILL_NEW_PASSWORD", "long enough password")
    assert main(["user", "add", "ana", "--role", "dispute"]) == 0
    assert main(["user", "add", "ANA", "--role", "admin"]) == 2
    assert "already_exists" in capsys.readouterr().err
