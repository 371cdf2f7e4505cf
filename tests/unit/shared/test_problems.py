"""The shared error contract without Postgres or Kafka: a small app with the problem handlers, and the
three services' OpenAPI documents as they are built (no lifespan runs, nothing connects)."""

import re
from typing import Annotated

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from inventory_service.entrypoints.api import create_app as inventory_app
from order_service.entrypoints.api import create_app as order_app
from payment_service.entrypoints.api import create_app as payment_app
from pydantic import BaseModel, Field, ValidationError
from shared.api_types import JsonInt, NonBlankText, Text
from shared.problems import (
    PROBLEM_MEDIA_TYPE,
    RETRY_AFTER_S,
    Refusal,
    add_problem_schemas,
    install_problem_handlers,
    problem_responses,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class NoSuchThing(Exception):
    pass


def tiny_app() -> FastAPI:
    router = APIRouter(responses=problem_responses({404: "no such thing"}))

    @router.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        if name == "missing":
            raise NoSuchThing(f"no thing called {name}")
        if name == "outage":
            refused = ConnectionRefusedError(111, "Connect call failed")
            raise DBAPIError("SELECT 1", {}, refused) from refused
        if name == "shutdown":
            raise asyncpg.CannotConnectNowError("the database system is shutting down")
        if name == "busy":
            raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 30.00")
        if name == "bug":
            raise KeyError("a bug")
        return {"name": name}

    @router.put("/things/{name}")
    async def put_thing(name: str) -> dict[str, str]:
        return {"name": name}

    app = FastAPI()
    app.include_router(router)
    install_problem_handlers(app, {NoSuchThing: Refusal(404, "thing-not-found")})
    return app


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tiny_app()), base_url="http://t") as client:
        yield client


async def test_a_refusal_is_a_problem_of_its_own_type_with_the_exception_as_detail(client):
    response = await client.get("/things/missing")

    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json() == {
        "type": "urn:problem:thing-not-found",
        "title": "Thing not found",
        "status": 404,
        "detail": "no thing called missing",
        "instance": "/things/missing",
    }


@pytest.mark.parametrize("name", ["outage", "shutdown"])
async def test_a_database_outage_is_a_503_with_retry_after(client, name):
    response = await client.get(f"/things/{name}")

    assert response.status_code == 503 and response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert response.json()["type"] == "urn:problem:database-unavailable"


async def test_every_pooled_connection_busy_is_a_503_overloaded_with_retry_after_not_a_500(client):
    response = await client.get("/things/busy")

    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:problem:overloaded"


async def test_a_bug_is_a_500_problem_that_tells_nothing_of_the_internals(client):
    response = await client.get("/things/bug")

    assert response.status_code == 500 and response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "KeyError" not in response.text and "a bug" not in response.text


async def test_a_405_allows_every_method_of_the_path_not_only_the_first_route_s(client):
    response = await client.delete("/things/x")

    assert response.status_code == 405 and response.headers["allow"] == "GET, PUT"
    assert response.json()["title"] == "Method Not Allowed"


async def test_an_unknown_path_is_a_plain_404_problem(client):
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.json()["type"] == "about:blank" and response.json()["instance"] == "/nowhere"


class Thing(BaseModel):
    name: Annotated[NonBlankText, Field(max_length=10)]
    note: Annotated[Text, Field(max_length=10)] = ""
    count: Annotated[JsonInt, Field(ge=0)] = 0


@pytest.mark.parametrize("data", [{"name": "a\x00"}, {"name": " \t\u3000"}, {"name": "a", "note": "\x00"}])
def test_text_refuses_nul_and_non_blank_text_refuses_only_white_space(data):
    with pytest.raises(ValidationError):
        Thing.model_validate(data)


def test_json_integers_are_integers_written_either_way_and_nothing_else():
    assert Thing.model_validate({"name": "a", "count": 3.0}).count == 3
    for count in (3.5, "3", True, float("inf")):
        with pytest.raises(ValidationError):
            Thing.model_validate({"name": "a", "count": count})


# -- the documents --------------------------------------------------------------------------------

DOCUMENTS = {"order": order_app, "payment": payment_app, "inventory": inventory_app}


def operations(document: dict) -> list[tuple[str, dict]]:
    return [(f"{method.upper()} {path}", op) for path, item in document["paths"].items() for method, op in item.items()]


@pytest.mark.parametrize("service", DOCUMENTS)
def test_every_failure_an_operation_documents_is_a_problem_and_every_operation_documents_a_500(service):
    document = DOCUMENTS[service]().openapi()

    for name, operation in operations(document):
        responses = operation["responses"]
        assert "500" in responses, name
        for status, response in responses.items():
            if int(status) >= 400 and name != "GET /health/ready":
                assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], (name, status)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, name
    assert {"Problem", "ValidationProblem", "FieldError"} <= set(document["components"]["schemas"])
    assert "HTTPValidationError" not in document["components"]["schemas"]


WITH_NUL = ("\x00", "A\x00", "A\x00A", "a\x00 b", "MUG-1\x00")


@pytest.mark.parametrize("service", DOCUMENTS)
def test_every_text_a_client_sends_excludes_nul_in_the_schema(service):
    document = DOCUMENTS[service]().openapi()
    schemas = document["components"]["schemas"]

    def strings(schema: dict) -> list[dict]:
        if "$ref" in schema:
            return strings(schemas[schema["$ref"].rsplit("/", 1)[1]])
        found = [schema] if schema.get("type") == "string" and "format" not in schema and "enum" not in schema else []
        for key in ("anyOf", "allOf", "oneOf"):
            for part in schema.get(key, []):
                found += strings(part)
        for part in [*schema.get("properties", {}).values(), *([schema["items"]] if "items" in schema else [])]:
            found += strings(part)
        return found

    for name, operation in operations(document):
        inputs = [p["schema"] for p in operation.get("parameters", [])]
        if "requestBody" in operation:
            inputs.append(operation["requestBody"]["content"]["application/json"]["schema"])
        for schema in inputs:
            for string in strings(schema):
                assert "pattern" in string, (name, string)
                assert not any(re.search(string["pattern"], text) for text in WITH_NUL), (name, string)


def test_the_problem_schemas_go_into_the_components_once():
    document: dict = {}
    add_problem_schemas(document)
    add_problem_schemas(document)

    assert set(document["components"]["schemas"]) == {"Problem", "ValidationProblem", "FieldError"}
