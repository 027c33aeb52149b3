"""Can this version's schemas read what producers wrote before? Avro schema resolution as rules.

Tapeflow reads every topic with this version's schema (the reader) whatever schema the producer
wrote with (the writer, found by the id in the frame); the codec resolves the two with fastavro.
That works only if the reader can resolve every writer version still on the topics, so
`tapeflow init` checks it before anything runs (docs/schema-evolution.md):

- with a schema registry, against every version registered under the subject (and, for a real
  registry, with the registry's own compatibility endpoint, which applies the subject's level);
- with the local catalogue, against every version `catalogue.json` lists for the subject.

fastavro resolves lazily (a missing default shows only when a record is read), so the rules of
the Avro specification's "Schema Resolution" are applied here, up front, to the schemas alone:

- records match by unqualified name (or a reader alias); a reader field the writer lacks needs a
  default; writer fields the reader lacks are skipped;
- primitives match, or promote: int -> long, float, double; long -> float, double;
  float -> double; string <-> bytes;
- enums: every writer symbol is a reader symbol, or the reader has a default;
- arrays and maps: items and values resolve; fixed: same name and size;
- unions: every branch the writer may use resolves to some reader branch.

Tapeflow's own rule on top: a logical type the reader declares must be the writer's too, with
the same parameters. `decimal(18, 8)` read as `decimal(18, 6)`, or micros read as millis, would
resolve in Avro and silently change every value by a power of ten.
"""

from __future__ import annotations

from typing import Any

from tapeflow.errors import UserError

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}
_LOGICAL_PARAMS = ("logicalType", "precision", "scale")


class IncompatibleSchemaError(UserError, ValueError):
    """This version cannot read a schema version producers used; the message says where."""


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Names:
    """Named types of one schema (records, enums, fixed), by unqualified name."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}

    def resolve(self, node: Any) -> Any:
        """The definition behind a name reference; registers definitions as they appear."""
        while isinstance(node, dict) and isinstance(node.get("type"), dict | list) \
                and "logicalType" not in node:
            node = node["type"]  # {"type": {...}}: a wrapped type
        if isinstance(node, str) and node not in PRIMITIVES:
            return self.types.get(_short(node), node)
        if isinstance(node, dict) and node.get("type") in ("record", "enum", "fixed"):
            self.types.setdefault(_short(node["name"]), node)
        return node


def _type_name(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    kind = node.get("type")
    return kind if isinstance(kind, str) else _type_name(kind)


def _logical(node: Any) -> tuple[Any, ...] | None:
    if isinstance(node, dict) and "logicalType" in node:
        return tuple(node.get(k) for k in _LOGICAL_PARAMS)
    return None


def _named_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    names = {_short(reader["name"])} | {_short(a) for a in reader.get("aliases", [])}
    return _short(writer["name"]) in names


def problems(reader: Any, writer: Any, path: str = "", names: tuple[_Names, _Names] | None = None
             ) -> list[str]:
    """Why `reader` cannot read data written with `writer` (empty: it can)."""
    rn, wn = names if names is not None else (_Names(), _Names())
    reader, writer = rn.resolve(reader), wn.resolve(writer)
    where = path or "<root>"
    if isinstance(writer, list):
        out: list[str] = []
        for branch in writer:
            out += problems(reader, branch, path, (rn, wn))
        return out
    if isinstance(reader, list):
        w_type = _type_name(wn.resolve(writer))
        for branch in reader:
            b_type = _type_name(rn.resolve(branch))
            readable = b_type == w_type or (w_type, b_type) in PROMOTIONS
            if readable and not problems(branch, writer, path, (rn, wn)):
                return []
        return [f"{where}: no branch of the reader's union reads {w_type}"]
    r_logical, w_logical = _logical(reader), _logical(writer)
    if r_logical is not None and r_logical != w_logical:
        return [f"{where}: logical type {_describe(r_logical)} read, "
                f"{_describe(w_logical)} written"]
    r_type, w_type = _type_name(reader), _type_name(writer)
    if r_type != w_type:
        if (w_type, r_type) in PROMOTIONS:
            return []
        return [f"{where}: {w_type} written, {r_type} read"]
    if r_type == "record":
        return _record(reader, writer, path, (rn, wn))
    if r_type == "enum":
        if not _named_match(reader, writer):
            return [f"{where}: enum {writer['name']} written, {reader['name']} read"]
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return [f"{where}: enum symbols {missing} written, unknown to the reader"]
        return []
    if r_type == "array":
        return problems(reader["items"], writer["items"], f"{path}[]", (rn, wn))
    if r_type == "map":
        return problems(reader["values"], writer["values"], f"{path}{{}}", (rn, wn))
    if r_type == "fixed" and (not _named_match(reader, writer)
                              or reader["size"] != writer["size"]):
        return [f"{where}: fixed {writer['name']}({writer['size']}) written, "
                    f"{reader['name']}({reader['size']}) read"]
    return []


def _record(reader: dict[str, Any], writer: dict[str, Any], path: str,
            names: tuple[_Names, _Names]) -> list[str]:
    prefix = path or _short(reader["name"])
    if not _named_match(reader, writer):
        return [f"{prefix}: record {writer['name']} written, {reader['name']} read"]
    written = {f["name"]: f for f in writer["fields"]}
    out: list[str] = []
    for field in reader["fields"]:
        candidates = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in candidates if n in written), None)
        if source is None:
            if "default" not in field:
                out.append(f"{prefix}.{field['name']}: not written and has no default")
            continue
        out += problems(field["type"], source["type"], f"{prefix}.{field['name']}", names)
    return out


def _describe(logical: tuple[Any, ...] | None) -> str:
    if logical is None:
        return "none"
    kind, precision, scale = logical
    return f"{kind}({precision}, {scale})" if kind == "decimal" else str(kind)


def check(reader: dict[str, Any], writer: dict[str, Any], what: str) -> None:
    """Raise `IncompatibleSchemaError` naming `what` when `reader` cannot read `writer`."""
    found = problems(reader, writer)
    if found:
        raise IncompatibleSchemaError(f"{what}: {'; '.join(found)}")
