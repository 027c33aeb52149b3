"""Addresses of services as they may be shown: host, port and database, nothing else.

Why not "the DSN with its password masked": masking needs the DSN parsed exactly as the client
parses it, and a hand-made parser gets it wrong (`postgresql://u:hun#ter2@h/db` is a valid
libpq URI whose password holds a `#`; read as a URL, `#ter2@h/db` is a fragment and the
password was printed whole). So a DSN is parsed by the client's own rules (libpq's, through
psycopg, for Postgres) and only the parts that locate the service are shown; what cannot be
parsed is not shown at all. docs/security.md.
"""

from __future__ import annotations

import re

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from tapeflow.errors import UserError

UNREADABLE = "an unreadable DSN (not shown)"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)\S*@")
_KEYWORD_SECRET = re.compile(
    r"(\b(?:password|passwd|pwd|sslpassword|pgpassword)\s*=\s*)"  # key =
    r"('(?:[^'\\]|\\.)*'|\S+)",  # 'quoted, with \' escapes' or a bare word
    re.IGNORECASE)


class DsnError(UserError, ValueError):
    """A DSN the client cannot read. The message never quotes the DSN: its parser's own
    message can hold part of a password ("missing = after "ter2"")."""


def is_postgres(dsn: str) -> bool:
    """A libpq DSN: a postgres(ql):// URI or keyword=value pairs."""
    return dsn.startswith(_POSTGRES_SCHEMES) or "://" not in dsn


def postgres_parts(dsn: str) -> dict[str, str]:
    """The DSN's parameters as libpq reads them; `DsnError` when libpq cannot read it."""
    try:
        parts = conninfo_to_dict(dsn)
    except ProgrammingError:
        raise DsnError(
            "the Postgres DSN (TAPEFLOW_POSTGRES_DSN) cannot be read: in keyword form, a value "
            "holding spaces or quotes must be single-quoted (password='a b'), with ' and \\ "
            "escaped by a backslash; in URL form, %-encode such characters") from None
    return {key: str(value) for key, value in parts.items() if value is not None}


def redact(dsn: str) -> str:
    """Where a DSN points, for messages: host, port and database, never a user's secret.

    Postgres DSNs (URI or keywords) are read by libpq's rules; `chdb://PATH` is shown as is
    without its query; any other URL as scheme://host:port/path, without user info, query or
    fragment. An unreadable DSN is not shown at all."""
    if is_postgres(dsn):
        try:
            parts = postgres_parts(dsn)
        except DsnError:
            return UNREADABLE
        host = parts.get("host") or parts.get("hostaddr") or "local socket"
        if host.startswith("/"):
            host = f"[{host}]"
        port = parts.get("port")
        database = parts.get("dbname", "")
        return f"{host}{':' + port if port else ''}/{database}"
    scheme, _, rest = dsn.partition("://")
    if scheme == "chdb":
        return f"chdb://{re.split(r'[?#]', rest, maxsplit=1)[0]}"
    # The user info ends at the last '@' (a password may hold '/', '?', '#' or '@'); cutting at
    # the last one shows less, never more.
    rest = rest[rest.rindex("@") + 1:] if "@" in rest else rest
    where = re.split(r"[?#]", rest, maxsplit=1)[0]
    return f"{scheme}://{where}"


def scrub(text: str) -> str:
    """Free text (a command line, an error message) with credentials that look like DSN parts
    removed: a URL's user info and `password=...` pairs."""
    return _KEYWORD_SECRET.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))
