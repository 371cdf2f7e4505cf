"""Every API refuses a request body over `http_max_body_bytes` with a 413 problem, before anything
parses it (shared.body_limit, installed by shared.http.create_service_app). In process: the app is
called through httpx's ASGI transport, without its lifespan (no database, no Kafka)."""

import json
from collections.abc import AsyncIterator
from http import HTTPStatus

import httpx
import pytest
from fastapi import APIRouter
from order_service.domain import MAX_LINES
from order_service.domain.order import MAX_CUSTOMER_ID_LENGTH, MAX_QUANTITY
from order_service.entrypoints.schemas import PlaceOrderIn
from pydantic import BaseModel
from shared.http import create_service_app
from shared.settings import ServiceSettings

LIMIT = 1024


class Note(BaseModel):
    text: str


def app_recording(ran: list[str], limit: int = LIMIT):
    """An API with a route that parses a body and one that reads none; `ran` lists the routes run."""
    router = APIRouter()

    @router.post("/notes")
    async def add_note(note: Note) -> dict[str, int]:
        ran.append("notes")
        return {"length": len(note.text)}

    @router.post("/touch")
    async def touch() -> dict[str, str]:
        ran.append("touch")
        return {"status": "touched"}

    settings = ServiceSettings(
        service_name="probe",
        database_url="postgresql+asyncpg://probe:probe@127.0.0.1:1/probe",
        db_schema="probe",
        http_port=1,
        relay_metrics_port=2,
        worker_metrics_port=3,
        http_max_body_bytes=limit,
    )
    return create_service_app(settings, title="probe", description="probe", routers=[router])


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


def assert_too_large(response: httpx.Response, path: str) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": HTTPStatus.REQUEST_ENTITY_TOO_LARGE.phrase,  # RFC 9110 calls it Content Too Large
        "status": 413,
        "detail": f"the request body is larger than {LIMIT} bytes",
        "instance": path,
    }


@pytest.mark.parametrize("path", ["/notes", "/touch"])
async def test_a_body_declared_larger_than_the_limit_is_refused_before_the_route_runs(path):
    ran: list[str] = []
    async with client(app_recording(ran)) as http:
        response = await http.post(path, content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})

    assert_too_large(response, path)
    assert response.headers["connection"] == "close"
    assert ran == []


async def test_a_chunked_body_is_counted_as_it_streams_and_refused_once_it_passes_the_limit():
    ran: list[str] = []
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(100):  # 50 KiB if it were all read
            pulled.append(n)
            yield b" " * 512

    async with client(app_recording(ran)) as http:
        response = await http.post("/notes", content=chunks(), headers={"content-type": "application/json"})

    assert "content-length" not in response.request.headers  # sent chunked
    assert_too_large(response, "/notes")
    assert ran == []
    assert len(pulled) == 3, "reading stopped at the chunk that passed the limit"


async def test_a_body_within_the_limit_is_read_and_parsed_whether_declared_or_chunked():
    ran: list[str] = []
    body = json.dumps({"text": "x" * (LIMIT - 20)}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:500]
        yield body[500:]

    async with client(app_recording(ran)) as http:
        declared = await http.post("/notes", content=body, headers={"content-type": "application/json"})
        chunked = await http.post("/notes", content=chunks(), headers={"content-type": "application/json"})

    assert len(body) <= LIMIT
    assert (declared.status_code, chunked.status_code) == (200, 200)
    assert ran == ["notes", "notes"]


def test_the_largest_order_the_api_admits_fits_the_default_limit_many_times_over():
    # Every field at its longest, pretty-printed: the largest legitimate body of any of the APIs.
    largest = {
        "customer_id": "c" * MAX_CUSTOMER_ID_LENGTH,
        "items": [{"sku": f"{n:02d}" + "S" * 62, "quantity": MAX_QUANTITY} for n in range(MAX_LINES)],
        "payment_token": "t" * 256,
    }
    body = json.dumps(largest, indent=4).encode()
    PlaceOrderIn.model_validate_json(body)  # admitted as it is

    default = ServiceSettings.model_fields["http_max_body_bytes"].default
    assert len(body) < 8 * 1024 < default
