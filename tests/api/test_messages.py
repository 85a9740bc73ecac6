"""Push messages against docs/schemas/: real frames recorded from live servers right now (and
the committed fixture the Rust round-trip test reads) validate, every kind is covered, and
the JavaScript client's declared `Origin` (clients/js/index.d.ts) has the schema's fields."""

import json
import re

import jsonschema
import pytest

import record_messages
import servers

KINDS = {"snapshot", "delta", "heartbeat", "stale", "removed", "pong"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_messages.record(tmp_path_factory.mktemp("record"))


def committed():
    lines = record_messages.FIXTURE.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def check(records, message_schemas):
    any_message = jsonschema.Draft202012Validator(message_schemas["message.json"])
    seen = set()
    for r in records:
        message = json.loads(r["text"])
        kind = message["type"]
        seen.add((r["transport"], kind))
        for name, validator in [
            ("message.json", any_message),
            (f"{kind}.json", jsonschema.Draft202012Validator(message_schemas[f"{kind}.json"])),
        ]:
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(message)]
            assert not errors, f"{name} rejects {r['text']}: {errors}"
        # A schema for one kind rejects the others.
        for other in KINDS - {kind}:
            assert not jsonschema.Draft202012Validator(
                message_schemas[f"{other}.json"]
            ).is_valid(message), (other, r["text"])
    assert {k for _, k in seen} == KINDS, seen
    assert ("sse", "snapshot") in seen
    return seen


def every_origin_field(records) -> set:
    fields = set()
    for r in records:
        m = json.loads(r["text"])
        for o in m.get("upsert", []) + m.get("origins", []):
            fields |= set(o)
    return fields


def test_live_messages_validate_against_the_schemas(recorded, message_schemas):
    check(recorded, message_schemas)
    deltas = [json.loads(r["text"]) for r in recorded if '"type":"delta"' in r["text"]]
    assert any(d["remove"] for d in deltas) and any(d["upsert"] for d in deltas)
    assert any("received" in d for d in deltas)
    origin = message_schemas["message.json"]["$defs"]["Origin"]
    assert every_origin_field(recorded) == set(origin["properties"]), "an origin field never occurred"


def test_the_committed_fixture_validates_and_covers_every_kind(message_schemas):
    check(committed(), message_schemas)
    origin = message_schemas["message.json"]["$defs"]["Origin"]
    assert every_origin_field(committed()) == set(origin["properties"])


def test_the_schemas_reject_malformed_messages(message_schemas):
    validator = jsonschema.Draft202012Validator(message_schemas["message.json"])
    snapshot = next(
        m for m in map(lambda r: json.loads(r["text"]), committed())
        if m["type"] == "snapshot" and m["origins"]
    )
    assert validator.is_valid(snapshot)
    for broken in [
        {**snapshot, "type": "snapshots"},
        {k: v for k, v in snapshot.items() if k != "revision"},
        {**snapshot, "revision": -1},
        {**snapshot, "origins": [{**snapshot["origins"][0], "state": "gone"}]},
        {"type": "heartbeat"},
    ]:
        assert not validator.is_valid(broken), broken


def ts_interface(source: str, name: str) -> dict:
    """Fields of `export interface NAME { … }` in a .d.ts: {field: (optional, type text)}."""
    m = re.search(rf"export interface {name} \{{(.*?)\n\}}", source, re.S)
    assert m, f"interface {name} not found"
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    body = re.sub(r"//[^\n]*", "", body)
    fields = {}
    for field in re.finditer(r"(?:readonly\s+)?(\w+)(\??)\s*:\s*([^;]+);", body):
        fields[field.group(1)] = (field.group(2) == "?", field.group(3).strip())
    assert fields, f"no fields parsed from interface {name}"
    return fields


def ts_matches(ts: str, schema: dict, defs: dict) -> bool:
    ts = re.sub(r"^readonly\s+", "", ts.strip())
    if ts.endswith("[]"):
        return schema.get("type") == "array" and ts_matches(ts[:-2], schema["items"], defs)
    if re.fullmatch(r"[A-Z]\w*", ts):
        return schema.get("$ref", "").rsplit("/", 1)[-1] == ts
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    literals = re.findall(r"'([^']*)'", ts)
    if literals and re.fullmatch(r"\s*'[^']*'(\s*\|\s*'[^']*')*\s*", ts):
        return set(literals) == set(schema.get("enum", []))
    types = schema.get("type")
    types = {types} if isinstance(types, str) else set(types or [])
    types.discard("null")
    return {"string": {"string"}, "number": {"integer", "number"}, "boolean": {"boolean"}}.get(
        ts, set()
    ) >= types and bool(types)


def test_the_js_client_declares_origin_like_the_schema(message_schemas):
    defs = message_schemas["message.json"]["$defs"]
    schema = defs["Origin"]
    fields = ts_interface((servers.ROOT / "clients/js/index.d.ts").read_text(), "Origin")
    assert set(fields) == set(schema["properties"]), (
        "clients/js/index.d.ts `Origin` and docs/schemas (Rust `Origin`) list different fields"
    )
    for field, (optional, ts) in fields.items():
        assert optional == (field not in schema.get("required", [])), field
        assert ts_matches(ts, schema["properties"][field], defs), (field, ts)


def message_kinds(message_schema: dict) -> dict:
    """`oneOf` of message.json → kind (`"delta"`) → (properties, required)."""
    defs = message_schema["$defs"]
    kinds = {}
    for variant in message_schema["oneOf"]:
        parts = variant.get("allOf", [variant])
        properties, required = {}, set()
        for part in parts:
            if "$ref" in part:
                part = defs[part["$ref"].rsplit("/", 1)[1]]
            properties.update(part.get("properties", {}))
            required.update(part.get("required", []))
        kind = properties["type"]["enum"][0]
        kinds[kind] = (properties, required)
    return kinds


def test_the_js_client_declares_every_message_like_the_schema(message_schemas):
    schema = message_schemas["message.json"]
    defs = schema["$defs"]
    source = (servers.ROOT / "clients/js/index.d.ts").read_text()
    kinds = message_kinds(schema)
    assert set(kinds) == {"snapshot", "delta", "heartbeat", "stale", "removed", "pong"}
    union = re.search(r"export type Message =([^;]+);", source)
    assert union, "index.d.ts declares no `Message` union"
    declared = {name.strip() for name in union.group(1).split("|") if name.strip()}
    assert declared == {f"{k.capitalize()}Message" for k in kinds}, declared
    for kind, (properties, required) in kinds.items():
        name = f"{kind.capitalize()}Message"
        fields = ts_interface(source, name)
        assert set(fields) == set(properties), (name, set(fields) ^ set(properties))
        for field, (optional, ts) in fields.items():
            assert optional == (field not in required), (name, field)
            assert ts_matches(ts, properties[field], defs), (name, field, ts)
