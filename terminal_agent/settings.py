"""Typed settings for the terminal agent, read from ``TILL_AGENT_*`` environment variables."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    """Where the agent finds the service, its hardware and its journal.

    The token is the terminal's bearer token (``till token create --role terminal --terminal ID`` or
    ``POST /v1/tokens``); the PAN key is the merchant's secret for the keyed card token, the same on
    every terminal of the merchant so a refund can be matched to the card of the sale.
    """

    model_config = SettingsConfigDict(env_prefix="TILL_AGENT_", extra="ignore")

    service_url: str = Field("http://127.0.0.1:8000", description="The ledger service (till serve).")
    token: SecretStr | None = Field(None, description="The terminal's bearer token.")
    token_file: Path | None = Field(None, description="A file holding the token (instead of TILL_AGENT_TOKEN).")
    terminal_id: str = Field("", description="The terminal's id as registered (POST /v1/terminals).")
    operator_no: str = Field("01", description="The operator (收银员) who signs in at this counter.")
    data_dir: Path = Field(Path("till-agent"), description="The journal, signatures and the PAN key live here.")
    pan_key_file: Path | None = Field(None, description="The merchant's PAN key (32+ random bytes); default "
                                      "$TILL_AGENT_DATA_DIR/pan.key, created on first start.")
    printer_url: str = Field("tcp://127.0.0.1:9100", description="tcp://host:port, usb://VID:PID, "
                             "serial:///dev/ttyUSB0?baudrate=9600, file:///dev/usb/lp0 or dummy:")
    printer_columns: int = Field(32, description="32 (58 mm paper) or 48 (80 mm).")
    printer_chinese_mode: bool = Field(True, description="Send FS & (Chinese mode) before GB18030 text.")
    contact_reader: str = Field("Virtual PCD 00 00", description="PC/SC reader name of the chip slot; '' for none.")
    contactless_reader: str = Field("Virtual PCD 00 01", description="PC/SC reader name of the contactless "
                                    "pad; '' for none.")
    signature_image: Path | None = Field(None, description="Development signature pad: the PNG a tablet "
                                         "writes; none = every signature is waived with a reason.")
    receipt_lang: str = Field("zh", pattern="^(zh|en)$")
    ui_lang: str = Field("both", pattern="^(zh|en|both)$")
    card_timeout_s: float = Field(60.0, gt=0, description="How long to wait for a card.")
    request_timeout_s: float = Field(5.0, gt=0)
    forward_interval_s: float = Field(2.0, gt=0, description="How often queued events are retried.")

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    def bearer_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        raise ValueError("set TILL_AGENT_TOKEN or TILL_AGENT_TOKEN_FILE to the terminal's token")

    def pan_key(self) -> bytes:
        """The merchant's PAN key; a new one is made (owner-only file) when the default file is missing."""
        path = self.pan_key_file or self.data_dir / "pan.key"
        if not path.exists() and self.pan_key_file is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        key = path.read_bytes()
        if len(key) < 16:
            raise ValueError(f"the PAN key in {path} is too short (16 bytes at least)")
        return key
