"""Every value a client sends any API is bounded (OWASP API4, unrestricted resource consumption): each
string has a maximum length (or is one of a few values, or a UUID), each integer a maximum, each list
a maximum number of items, and no body takes properties it does not declare. Read from the OpenAPI
documents, so a parameter or field added later without a bound fails here. The bodies' total size is
bounded too (shared.body_limit, tests/unit/shared/test_body_limit.py)."""

import importlib
import re
from typing import Any

import pytest

SERVICES = ("order", "payment", "inventory")


def document(svc: str) -> dict[str, Any]:
    document: dict[str, Any] = importlib.import_module(f"{svc}_service.entrypoints.api").create_app().openapi()
    return document


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """Where in `schema` a client's value has no upper bound."""
    schema = resolve(document, schema)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return [found for part in schema[combinator] for found in unbounded(document, part, where)]
    if "enum" in schema or "const" in schema:
        return []
    kind = schema.get("type")
    if kind == "string":
        bounded = (
            "maxLength" in schema
            or schema.get("format") in ("uuid", "date-time")
            or _fixed_length(schema.get("pattern", ""))
        )
        return [] if bounded else [f"{where}: a string without maxLength"]
    if kind == "integer":
        # le / lt: how pydantic (2.14) writes the bounds of an integer it validates after a BeforeValidator
        # (shared.api_types.JsonInt) instead of maximum / exclusiveMaximum. Bounded all the same.
        bounds = {"maximum", "exclusiveMaximum", "le", "lt"}
        return [] if bounds & schema.keys() else [f"{where}: an integer without maximum"]
    if kind == "array":
        found = [] if "maxItems" in schema else [f"{where}: a list without maxItems"]
        return found + unbounded(document, schema.get("items", {}), f"{where}[]")
    if kind == "object":
        found = [] if schema.get("additionalProperties") is False else [f"{where}: an object open to any property"]
        for name, field in schema.get("properties", {}).items():
            found += unbounded(document, field, f"{where}.{name}")
        return found
    return []  # null, boolean


def _fixed_length(pattern: str) -> bool:
    """An anchored pattern without an open-ended repeat (`^[A-Z]{3}$`) bounds a string's length."""
    return bool(re.fullmatch(r"\^[^*+]*\$", pattern)) and not re.search(r"\{\d*,\}", pattern)


def request_values(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, schema) of every parameter and JSON body of every operation."""
    values = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                values.append((f"{method.upper()} {path} {parameter['in']} {parameter['name']}", parameter["schema"]))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                values.append((f"{method.upper()} {path} body", body["schema"]))
    return values


@pytest.mark.parametrize("svc", SERVICES)
def test_every_value_a_client_sends_the_api_is_bounded(svc):
    api = document(svc)

    assert request_values(api) or svc == "payment"
    assert [found for where, schema in request_values(api) for found in unbounded(api, schema, where)] == []


def test_the_check_finds_a_list_a_string_and_an_integer_without_bounds():
    api = {"components": {"schemas": {}}}
    body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"lines": {"type": "array", "items": {"type": "string"}}, "n": {"type": "integer"}},
    }

    assert unbounded(api, body, "body") == [
        "body.lines: a list without maxItems",
        "body.lines[]: a string without maxLength",
        "body.n: an integer without maximum",
    ]
