"""The served OpenAPI document: valid OpenAPI 3.1, every example conforms to its schema, and
the message schemas in docs/schemas/ are the document's `Message` component."""

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPERATIONS = {
    ("get", "/openapi.json"),
    ("get", "/v1/pools"),
    ("get", "/v1/pools/{ns}/{svc}"),
    ("get", "/v1/pools/{ns}/{svc}/pick"),
    ("get", "/v1/pools/{ns}/{svc}/watch"),
    ("get", "/v1/pools/{ns}/{svc}/events"),
}
ERROR_CODES = {
    "bad_parameter", "forbidden_origin", "unknown_pool", "not_found", "method_not_allowed",
    "upgrade_required", "too_many_subscribers", "not_synced", "too_many_connections",
}


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises with the first violation


def test_every_operation_is_described(document):
    found = {(m, p) for p, item in document["paths"].items() for m in item}
    assert found == OPERATIONS
    for path, item in document["paths"].items():
        for op in item.values():
            assert op.get("summary") and op.get("description"), path
            for status, response in op["responses"].items():
                assert response.get("description"), (path, status)


def test_the_error_schema_lists_every_code(document):
    assert set(document["components"]["schemas"]["ErrorCode"]["enum"]) == ERROR_CODES


def test_the_watch_operation_documents_the_upgrade_and_its_errors(document):
    responses = document["paths"]["/v1/pools/{ns}/{svc}/watch"]["get"]["responses"]
    assert set(responses) == {"101", "400", "403", "404", "426", "429", "503"}
    events = document["paths"]["/v1/pools/{ns}/{svc}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert "Last-Event-ID" in {p["name"] for p in events["parameters"]}
    snapshot = document["paths"]["/v1/pools/{ns}/{svc}"]["get"]
    assert {"revision", "wait", "If-None-Match"} <= {p["name"] for p in snapshot["parameters"]}
    assert set(snapshot["responses"]["200"]["headers"]) >= {"ETag"}
    assert "304" in snapshot["responses"]
    pick = document["paths"]["/v1/pools/{ns}/{svc}/pick"]["get"]
    assert {"key", "zone", "exclude", "count"} == {
        p["name"] for p in pick["parameters"] if p["in"] == "query"
    }


def examples(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                for media, content in response.get("content", {}).items():
                    if media != "application/json" or "schema" not in content:
                        continue
                    values = [("example", content["example"])] if "example" in content else []
                    values += [(n, e["value"]) for n, e in content.get("examples", {}).items()]
                    for name, value in values:
                        yield f"{method} {path} {status} {name}", content["schema"], value


def test_every_example_conforms_to_its_schema(document):
    registry = Registry().with_resource(
        "urn:doc", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    checked = 0
    for label, schema, value in examples(document):
        ref = schema["$ref"].replace("#/", "urn:doc#/")
        validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, f"{label}: {errors}"
        checked += 1
    assert checked >= 20, checked


def test_docs_schemas_are_the_documents_message_component(document, message_schemas):
    message = message_schemas["message.json"]
    components = document["components"]["schemas"]
    kinds = [s["properties"]["type"]["enum"][0] if "properties" in s else
             next(p["properties"]["type"]["enum"][0] for p in s["allOf"] if "properties" in p)
             for s in components["Message"]["oneOf"]]
    assert sorted(kinds) == sorted(["snapshot", "delta", "heartbeat", "stale", "removed", "pong"])
    assert len(message["oneOf"]) == len(kinds)
    for kind in kinds:
        assert f"{kind}.json" in message_schemas
    for name in ("Snapshot", "Delta", "Origin", "OriginState"):
        assert set(message["$defs"][name].get("properties", {})) == set(
            components[name].get("properties", {})
        ), name


@pytest.mark.parametrize("name", ["message.json", "snapshot.json", "delta.json", "heartbeat.json",
                                  "stale.json", "removed.json", "pong.json"])
def test_message_schemas_are_valid_json_schema(message_schemas, name):
    jsonschema.Draft202012Validator.check_schema(message_schemas[name])
