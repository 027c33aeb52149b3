"""Who is looking, and what they may see: the same rule as an alert subscription.

A viewer reads desks, as a subscriber does (`TAPEFLOW_ACCESS_SUBSCRIBERS`): it sees the rows
and events of the accounts of its desks (`TAPEFLOW_ACCESS_DESKS`), decided by the very
function that decides what `tapeflow alerts` delivers
(`tapeflow.core.risk.subscription.permitted`), so an alert without an account is withheld from
a restricted viewer as from a restricted subscriber. Market data (candles, last trade,
rejected-tick counts) is every desk's. Without configured viewers the server serves one local
viewer who may read everything; it then listens on localhost only (the default bind
address). With `TAPEFLOW_ACCESS_VIEWERS_FILE`, every request must authenticate (HTTP Basic;
use TLS in front of it beyond localhost) as a viewer of that file: an unknown viewer or a
wrong password gets 401, another desk's account 404, never data.

The file is JSON: `{"alice": {"password_scrypt": "<salt hex>$<hash hex>", "desks":
["desk-a"]}, "ops": {"password_scrypt": "...", "desks": "*"}}`; `"accounts": [...]` adds
single accounts outside any desk. `tapeflow serve --hash-password` prints the hash of a
password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tapeflow.core.risk import permitted_account
from tapeflow.errors import UserError

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class Viewer:
    name: str
    accounts: frozenset[str] | None
    """None: every account."""

    def may_see(self, account_id: str | None) -> bool:
        """An account's row or event; an event without an account only for an unrestricted
        viewer: the alert subscriptions' rule, the same function."""
        return permitted_account(account_id, self.accounts)

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
    scopes: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    """Viewer name -> the accounts it may read (None: all), resolved from desks at load."""

    @classmethod
    def load(cls, path: Path | None,
             desks: Mapping[str, frozenset[str]] | None = None) -> Viewers:
        """The viewers of `path`, their desks resolved with `desks` (the settings'
        `access.desks`); a desk that is not configured is an error, not an empty scope."""
        if path is None:
            return cls(None)
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"viewers file {path}: {exc}") from None
        if not isinstance(loaded, dict) or not all(
                isinstance(v, dict) and "password_scrypt" in v for v in loaded.values()):
            raise UserError(f"viewers file {path}: expected {{name: {{password_scrypt, "
                            "desks}}}}")
        return cls(loaded, {name: _scope(path, name, entry, desks or {})
                            for name, entry in loaded.items()})

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
        return Viewer(name, self.scopes[name])


def _scope(path: Path, name: str, entry: Mapping[str, Any],
           desks: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    """The accounts of a viewer's desks and its own accounts; None when either is `*`."""
    wanted_desks, accounts = entry.get("desks", []), entry.get("accounts", [])
    if wanted_desks == "*" or accounts == "*":
        return None
    if not all(isinstance(x, list) and all(isinstance(v, str) for v in x)
               for x in (wanted_desks, accounts)):
        raise UserError(f"viewers file {path}: viewer {name}: desks and accounts are lists "
                        "of names or \"*\"")
    unknown = sorted(d for d in wanted_desks if d not in desks)
    if unknown:
        raise UserError(f"viewers file {path}: viewer {name}: no desk {', '.join(unknown)} "
                        "in TAPEFLOW_ACCESS_DESKS")
    return frozenset(accounts).union(*(desks[d] for d in wanted_desks))
