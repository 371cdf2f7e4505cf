"""What every service's HTTP API has alike: lifespan wiring, health probes, metrics, a session
dependency, request metrics, one error contract (RFC 9457 problems, `shared.problems`), a ceiling on
request bodies (`shared.body_limit`) and bearer token verification (`shared.auth`; health and
metrics stay open)."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api_docs import install_offline_docs
from shared.auth import install_auth_problems, verifier_from
from shared.body_limit import BodySizeLimit
from shared.db import create_engine, create_session_factory
from shared.logging import configure_logging
from shared.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from shared.problems import Refusal, add_problem_schemas, install_problem_handlers, problem_responses
from shared.settings import ServiceSettings
from shared.tracing import configure_tracing

PROBE_TIMEOUT_S = 2.0
UNTRACED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
# FastAPI's own OpenTelemetry support: a server span per request (shared.tracing sets the provider),
# the child of the request's traceparent if it has one, so POST /orders starts the order's trace.
# Not the probes and metrics (polled every few seconds, they would be most of the spans); no spans
# for dependencies, endpoint and serialization (three more per request, for timings the server span
# has), no metrics (Prometheus has them: RequestMetrics), no logs (validation failures would carry
# the request's input, which may hold a payment token).
TELEMETRY: TelemetryConfig = {
    "operation_spans": False,
    "metrics": False,
    "logs": False,
    "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS,
}


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the route commits explicitly (`async with session.begin()`)."""
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    refusals: Mapping[type[Exception], Refusal] | None = None,
) -> FastAPI:
    """The service's API. `refusals` maps the exceptions its handlers raise for a request that
    cannot be served (unknown order, conflicting key...) to their problem answers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.token_verifier = verifier_from(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            jwks_url=settings.auth_jwks_url,
            public_key_file=settings.auth_public_key_file,
        )
        app.state.engine = create_engine(settings, role="api")
        app.state.sessions = create_session_factory(app.state.engine)
        app.state.kafka_admin = AIOKafkaAdminClient(
            **settings.kafka_client_config(), client_id=f"{settings.service_name}-api"
        )
        try:
            await app.state.kafka_admin.start()
        except Exception:  # readiness reports it; the API still serves what needs only Postgres
            app.state.kafka_admin = None
        try:
            yield
        finally:
            if app.state.kafka_admin is not None:
                await app.state.kafka_admin.close()
            await app.state.engine.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=TELEMETRY,
    )
    install_offline_docs(app)  # the docs pages load nothing from the internet
    app.include_router(_operations_router(settings))
    for router in routers:
        app.include_router(router)
    install_problem_handlers(app, refusals or {})
    install_auth_problems(app)
    _document_problems(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.http_max_body_bytes)  # before anything reads the body
    app.add_middleware(RequestMetrics, service=settings.service_name)  # outermost: sees every answer
    return app


def _document_problems(app: FastAPI) -> None:
    """The operations' `responses` refer to the Problem schemas; FastAPI only collects the schemas
    of models it sees, so they are added to the document here."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()  # kept in app.openapi_schema, so the schemas are added once
        add_problem_schemas(document)
        return document

    # Replacing the method is FastAPI's documented way to extend the document; mypy forbids assigning
    # to a method.
    app.openapi = openapi  # type: ignore[method-assign]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]


def _operations_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", responses=problem_responses(validated=False, database=False))
    async def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "live"}

    @router.get(
        "/health/ready",
        response_model=Readiness,
        responses={
            **problem_responses(validated=False, database=False),
            503: {"model": Readiness, "description": "a dependency is unreachable"},
        },
    )
    async def ready(request: Request) -> JSONResponse:
        """Ready when both Postgres and Kafka answer."""
        checks = {
            "database": await _check(_database_ok(request)),
            "kafka": await _check(_kafka_ok(request)),
        }
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, PROBE_TIMEOUT_S)
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:300]
    return "ok"


async def _database_ok(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _kafka_ok(request: Request) -> None:
    admin = request.app.state.kafka_admin
    if admin is None:
        settings = request.app.state.settings
        admin = AIOKafkaAdminClient(**settings.kafka_client_config(), client_id=f"{settings.service_name}-api")
        await admin.start()
        request.app.state.kafka_admin = admin
    cluster = await admin.describe_cluster()
    if not cluster["brokers"]:
        raise RuntimeError("no brokers in the cluster metadata")


class RequestMetrics:
    """Counts and times every request by route template (not by raw path, which would give one
    time series per order id). Plain ASGI rather than BaseHTTPMiddleware, which costs an extra task
    and a response stream per request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self._app = app
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, record_status)
        finally:
            # The router stores the matched route in the (shared) scope.
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            HTTP_REQUESTS.labels(self._service, method, path, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(self._service, method, path).observe(time.perf_counter() - started)


def serve(app_factory: str, settings: ServiceSettings) -> None:
    """Run an API under uvicorn (the app is built by the factory, inside the server process)."""
    configure_logging(settings.service_name, "api", level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name, "api")
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )
