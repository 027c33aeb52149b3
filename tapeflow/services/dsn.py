"""Addresses of services as they may be shown: never with a password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_SECRET_KEYS = ("password", "passwd", "pwd", "sslpassword")
_KEYWORD_SECRET = re.compile(
    r"(\b(?:password|passwd|pwd|sslpassword)\s*=\s*)"  # key =
    r"('(?:[^'\\]|\\.)*'|\S+)",  # 'quoted, with \' escapes' or a bare word
    re.IGNORECASE)


def redact(dsn: str) -> str:
    """A DSN without its secrets, for messages: the password of a URL's user info, password
    query parameters, and `password=...` pairs of a libpq keyword DSN."""
    if "://" not in dsn:
        return _KEYWORD_SECRET.sub(r"\1***", dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        netloc = f"{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else netloc
    query = "&".join(
        f"{key}=***" if key.lower() in _SECRET_KEYS else pair
        for pair in parts.query.split("&") if pair
        for key in [pair.split("=", 1)[0]]
    )
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))
