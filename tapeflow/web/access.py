"""Who is looking, and what they may see: the same rule as an alert subscription.

A viewer sees the events and rows of the accounts it may read, and market data (candles,
marks, rejected-tick counts) of every symbol. Without configured viewers the server serves
one local viewer who may read everything; it then listens on localhost only (the default
bind address). With `TAPEFLOW_ACCESS_VIEWERS_FILE`, every request must authenticate (HTTP
Basic; use TLS in front of it beyond localhost) as a viewer of that file, and sees only its
accounts: an unknown viewer or a wrong password gets 401, never data.

The file is JSON: `{"alice": {"password_scrypt": "<salt hex>$<hash hex>", "accounts":
["ACC001", "ACC002"]}}`; `tapeflow serve --hash-password` prints the hash of a password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tapeflow.errors import UserError

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class Viewer:
    name: str
    accounts: frozenset[str] | None
    """None: every account."""

    def may_see(self, account_id: str | None) -> bool:
        """An account's row or event; an event without an account only for an unrestricted
        viewer (as alert subscriptions withhold them from a restricted subscriber)."""
        if self.accounts is None:
            return True
        return account_id is not None and account_id in self.accounts

    def accepts(self, event: Mapping[str, Any]) -> bool:
        if event.get("kind") == "candle":
            return True  # market data
        return self.may_see(event.get("account_id"))


LOCAL = Viewer("local", None)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"{salt.hex()}${digest.hex()}"


def _check(password: str, stored: str) -> bool:
    try:
        salt_hex, digest_hex = stored.split("$", 1)
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT), digest)


@dataclass(frozen=True)
class Viewers:
    """The configured viewers (none: one local viewer who sees everything)."""

    entries: Mapping[str, Mapping[str, Any]] | None = None

    @classmethod
    def load(cls, path: Path | None) -> Viewers:
        if path is None:
            return cls(None)
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"viewers file {path}: {exc}") from None
        if not isinstance(loaded, dict) or not all(
                isinstance(v, dict) and "password_scrypt" in v for v in loaded.values()):
            raise UserError(f"viewers file {path}: expected {{name: {{password_scrypt, "
                            "accounts}}}}")
        return cls(loaded)

    @property
    def open(self) -> bool:
        return self.entries is None

    def authenticate(self, authorization: str | None) -> Viewer | None:
        """The viewer of an `Authorization: Basic ...` header; None when it does not match."""
        if self.entries is None:
            return LOCAL
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        entry = self.entries.get(name)
        if entry is None or not _check(password, str(entry["password_scrypt"])):
            return None
        accounts = entry.get("accounts")
        return Viewer(name, None if accounts == "*" else frozenset(accounts or ()))
