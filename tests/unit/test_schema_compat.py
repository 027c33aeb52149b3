"""The schema compatibility rules (schemas/compat.py) and `tapeflow init`'s schema check.

Table-driven: each case is a change a producer (writer) or this version (reader) might make, and
whether this version can still read. Differential: for every case without a logical type,
fastavro itself writes random records with the writer schema and reads them with both schemas;
when the rules say "compatible", fastavro must read every record, and when fastavro fails, the
rules must have said "incompatible" (random records do not always reach a bad union branch or
enum symbol, so the converse is the table's job).
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import fastavro.utils
import pytest

from jobs.init import check_schemas
from schemas.catalogue import CATALOGUE_FILE, LocalCatalogue, RegistryCatalogue, current_schema
from schemas.codec import Codec
from schemas.compat import IncompatibleSchemaError, check, problems
from tapeflow.core.models import Trade
from tapeflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _rec(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields)}


def _f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def _enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": list(symbols), **extra}


DEC8 = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}
DEC6 = {**DEC8, "scale": 6}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}

# (case, reader, writer, problem substring or None when compatible)
CASES: list[tuple[str, Any, Any, str | None]] = [
    ("same", _rec(_f("a", "long")), _rec(_f("a", "long")), None),
    ("writer added a field", _rec(_f("a", "long")), _rec(_f("a", "long"), _f("b", "string")),
     None),
    ("reader added an optional field", _rec(_f("a", "long"), _f("b", ["null", "string"],
                                                                 default=None)),
     _rec(_f("a", "long")), None),
    ("reader added a required field", _rec(_f("a", "long"), _f("b", "string")),
     _rec(_f("a", "long")), "R.b: not written and has no default"),
    ("writer removed a required field", _rec(_f("a", "long"), _f("b", "string")),
     _rec(_f("b", "string")), "R.a: not written"),
    ("field renamed with an alias", _rec(_f("c", "long", aliases=["a"])), _rec(_f("a", "long")),
     None),
    ("int promoted to long", _rec(_f("a", "long")), _rec(_f("a", "int")), None),
    ("long promoted to double", _rec(_f("a", "double")), _rec(_f("a", "long")), None),
    ("long narrowed to int", _rec(_f("a", "int")), _rec(_f("a", "long")),
     "R.a: long written, int read"),
    ("string changed to long", _rec(_f("a", "long")), _rec(_f("a", "string")),
     "R.a: string written, long read"),
    ("string read as bytes", _rec(_f("a", "bytes")), _rec(_f("a", "string")), None),
    ("field made nullable", _rec(_f("a", ["null", "long"])), _rec(_f("a", "long")), None),
    ("nullable field made required", _rec(_f("a", "long")), _rec(_f("a", ["null", "long"])),
     "R.a: null written, long read"),
    ("union lost a branch", _rec(_f("a", ["null", "long"])),
     _rec(_f("a", ["null", "long", "string"])), "no branch of the reader's union reads string"),
    ("enum gained a symbol", _rec(_f("e", _enum("A", "B", "C"))), _rec(_f("e", _enum("A", "B"))),
     None),
    ("enum lost a symbol", _rec(_f("e", _enum("A"))), _rec(_f("e", _enum("A", "B"))),
     "enum symbols ['B'] written"),
    ("enum lost a symbol, reader default", _rec(_f("e", _enum("A", "Z", default="Z"))),
     _rec(_f("e", _enum("A", "B"))), None),
    ("array items changed", _rec(_f("a", {"type": "array", "items": "long"})),
     _rec(_f("a", {"type": "array", "items": "string"})), "R.a[]: string written, long read"),
    ("map values promoted", _rec(_f("m", {"type": "map", "values": "double"})),
     _rec(_f("m", {"type": "map", "values": "int"})), None),
    ("record renamed", _rec(_f("a", "long"), name="S"), _rec(_f("a", "long")),
     "record R written, S read"),
    ("record renamed with an alias", {**_rec(_f("a", "long"), name="S"), "aliases": ["R"]},
     _rec(_f("a", "long")), None),
    ("namespace changed", _rec(_f("a", "long"), name="new.ns.R"), _rec(_f("a", "long"),
                                                                        name="old.R"), None),
    ("decimal scale changed", _rec(_f("p", DEC6)), _rec(_f("p", DEC8)),
     "R.p: logical type decimal(18, 6) read, decimal(18, 8) written"),
    ("decimal read from plain bytes", _rec(_f("p", DEC8)), _rec(_f("p", "bytes")),
     "logical type decimal(18, 8) read, none written"),
    ("micros read as millis", _rec(_f("t", MILLIS)), _rec(_f("t", MICROS)),
     "logical type timestamp-millis read, timestamp-micros written"),
    ("decimal read as plain bytes", _rec(_f("p", "bytes")), _rec(_f("p", DEC8)), None),
]


@pytest.mark.parametrize(("case", "reader", "writer", "expect"), CASES, ids=[c[0] for c in CASES])
def test_rules(case: str, reader: Any, writer: Any, expect: str | None) -> None:
    found = problems(reader, writer)
    if expect is None:
        assert found == []
    else:
        assert len(found) == 1 and expect in found[0], found


def _has_logical(schema: Any) -> bool:
    return "logicalType" in json.dumps(schema)


@pytest.mark.parametrize(("case", "reader", "writer", "expect"),
                         [c for c in CASES if not _has_logical(c[1:3])],
                         ids=[c[0] for c in CASES if not _has_logical(c[1:3])])
def test_rules_agree_with_fastavro(case: str, reader: Any, writer: Any,
                                   expect: str | None) -> None:
    parsed_w = fastavro.parse_schema(copy.deepcopy(writer))
    parsed_r = fastavro.parse_schema(copy.deepcopy(reader))
    failed = False
    for record in fastavro.utils.generate_many(parsed_w, 30):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed_w, record)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, parsed_w, parsed_r)
        except Exception:
            failed = True
    if not problems(reader, writer):
        assert not failed, "the rules allow what fastavro cannot read"
    if failed:
        assert problems(reader, writer)


def test_every_current_schema_reads_itself_and_the_catalogue() -> None:
    for name in ("Trade", "Quote", "ExecutionReport", "RiskAlert", "DeadLetter", "CashMovement"):
        schema = current_schema(name)
        assert problems(schema, schema) == []
    assert check_schemas(Settings()) == "compatible with 9 catalogued versions"


def test_an_added_optional_field_is_compatible_both_ways() -> None:
    old = current_schema("Trade")
    new = copy.deepcopy(old)
    new["fields"].append(_f("aggressor", ["null", "string"], default=None))
    check(old, new, "old reads new")
    check(new, old, "new reads old")


def _catalogue_with_old_trade(tmp: Path, old_trade: dict[str, Any]) -> Path:
    """A catalogue whose Trade subject has an older version (id 11) besides the current one."""
    doc = json.loads(CATALOGUE_FILE.read_text())
    (tmp / "avro").mkdir()
    for entry in doc["schemas"]:
        (tmp / entry["file"]).write_text((CATALOGUE_FILE.parent / entry["file"]).read_text())
    (tmp / "avro" / "Trade.v0.avsc").write_text(json.dumps(old_trade))
    doc["schemas"].append({"id": 11, "subject": "md.trades-value", "file": "avro/Trade.v0.avsc"})
    path = tmp / "catalogue.json"
    path.write_text(json.dumps(doc))
    return path


def _old_trade_without_venue() -> dict[str, Any]:
    old = current_schema("Trade")
    old["fields"] = [f for f in old["fields"] if f["name"] != "venue"]
    return old


def test_init_refuses_a_catalogue_this_version_cannot_read(tmp_path: Path) -> None:
    path = _catalogue_with_old_trade(tmp_path, _old_trade_without_venue())
    with pytest.raises(IncompatibleSchemaError) as info:
        check_schemas(Settings(schema_registry_catalogue=path))
    assert str(info.value) == ("schemas/avro/Trade.avsc cannot read md.trades-value schema id 11 "
                               "(catalogue): Trade.venue: not written and has no default")


def test_init_refuses_a_registry_version_this_version_cannot_read() -> None:
    registry = RegistryCatalogue.from_url("mock://compat")
    settings = Settings(schema_registry_url="mock://compat")
    assert check_schemas(settings, registry) == "compatible with 0 registered versions"
    registry.register_current()
    assert check_schemas(settings, registry) == "compatible with 7 registered versions"
    registry.register("md.trades-value", _old_trade_without_venue())
    with pytest.raises(IncompatibleSchemaError, match=r"^schemas/avro/Trade\.avsc cannot read "
                       r"md\.trades-value schema id \d+ \(registry\): Trade\.venue: not "
                       r"written and has no default$"):
        check_schemas(settings, registry)


def test_tapeflow_init_says_so_in_one_line(tmp_path: Path) -> None:
    """The command line: exit 2 (an error), one line on stderr, no traceback, nothing
    created."""
    path = _catalogue_with_old_trade(tmp_path, _old_trade_without_venue())
    env = {"PATH": "/usr/bin:/bin", "TAPEFLOW_SCHEMA_REGISTRY_CATALOGUE": str(path),
           "TAPEFLOW_HOME": str(tmp_path / "home"),
           "TAPEFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    proc = subprocess.run([sys.executable, "-m", "tapeflow.cli", "init", "--no-kafka"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "tapeflow: error: schemas/avro/Trade.avsc cannot read md.trades-value schema id 11 "
        "(catalogue): Trade.venue: not written and has no default"]
    assert not (tmp_path / "home" / "clickhouse").exists()


def test_a_writer_stamps_the_id_of_its_own_schema_not_the_latest(tmp_path: Path) -> None:
    """A catalogue that lists a producer's newer Trade (id 11): this version still writes
    its own schema, so its frames must carry that schema's id (1), or they would not decode."""
    newer = current_schema("Trade")
    newer["fields"].append(_f("aggressor", ["null", "string"], default=None))
    catalogue = LocalCatalogue.load(_catalogue_with_old_trade(tmp_path, newer))
    assert catalogue.id_for("md.trades-value") == 11
    codec = Codec(catalogue)
    trade = Trade("A", "X", 1, 1, 1, 1)
    frame = codec.encode(trade)
    assert int.from_bytes(frame[1:5], "big") == 1
    assert codec.decode(frame) == trade
