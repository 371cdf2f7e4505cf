"""One error contract for every HTTP API: RFC 9457 problem details (`application/problem+json`).

Every answer that is not a success is a problem with `type`, `title`, `status`, `detail` and
`instance` (the request path); a validation problem adds `errors`, one entry per refused value.

- 422: the request does not match the OpenAPI document (including a body that is not UTF-8 JSON)
  or a rule the schema cannot express (a refusal, below). Rejected values are never echoed: one
  may be a payment token.
- 404 / 405: no such path, or a method the path does not have (`Allow` lists the ones it has).
- 404 / 409 / 422 for a service's refusals: each service passes a table `{exception class:
  Refusal(status, slug)}`; the problem's type is `urn:problem:<slug>`.
- 503 with `Retry-After`: the database is unreachable or restarting (`shared.outage`), or every
  pooled connection stayed busy for the pool's timeout (overloaded). A retry is
  safe where the operation is (GET, PUT, POST /orders with its Idempotency-Key): a commit whose
  answer was lost may have happened.
- 500: anything else. Logged with its traceback; the client learns nothing about the internals.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api_types import PATTERN_MESSAGES
from shared.logging import get_logger
from shared.outage import is_database_outage

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:problem:"
# A Postgres restart takes about ten seconds; a client that waits this long between tries sees the
# service back after one or two.
RETRY_AFTER_S = 5

log = get_logger(__name__)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(
        description="What kind of problem: `urn:problem:<name>` for this API's own kinds, "
        "`about:blank` when the status code says it all",
        examples=["urn:problem:order-not-found"],
    )
    title: str = Field(description="A short summary of the kind of problem; the same for every occurrence")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What is wrong with this request, for a human")
    instance: str = Field(description="The path of the request")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: `body`, `query`, `path` or `header`, then the field's path")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. `string_too_long`")


class ValidationProblem(Problem):
    """A 422. `errors` is there when the request does not match the OpenAPI document; a refusal by a
    rule the document cannot state (a service's own 422) has only the `detail`."""

    errors: list[FieldError] = Field(default_factory=list, description="Every value that was refused, and why")


@dataclass(frozen=True)
class Refusal:
    """How a service's exception reaches HTTP: a status and a problem type `urn:problem:<slug>`.
    The detail is the exception's message unless `detail` words it for a client."""

    status: int
    slug: str
    detail: Callable[[Exception], str] = str

    @property
    def title(self) -> str:
        return self.slug.replace("-", " ").capitalize()


# -- answers ------------------------------------------------------------------------------------


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"{TYPE_PREFIX}{slug}" if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def install_problem_handlers(app: FastAPI, refusals: Mapping[type[Exception], Refusal]) -> None:
    # Starlette types every handler as taking any Exception, though it calls each only with the class
    # it is registered for: a handler of a narrower class is what it means, and what it takes.
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    for error, refusal in refusals.items():
        app.add_exception_handler(error, _refused(refusal))
    app.add_middleware(LastResort)


def _refused(refusal: Refusal) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, refusal.status, refusal.detail(exc), slug=refusal.slug, title=refusal.title)

    return handler


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"loc": list(error.get("loc", ())), "msg": _message(error), "type": error.get("type", "")}
        for error in exc.errors()
    ]
    return _validation_problem(request, errors)


def _message(error: Mapping[str, Any]) -> str:
    context: Mapping[str, Any] = error.get("ctx") or {}
    pattern = context.get("pattern")
    message: str = error.get("msg", "")
    return PATTERN_MESSAGES.get(pattern, message) if isinstance(pattern, str) else message


def _validation_problem(request: Request, errors: list[dict[str, Any]]) -> JSONResponse:
    detail = "; ".join(_explain(error) for error in errors) or "invalid request"
    return problem_response(request, 422, detail, slug="invalid-request", title="Invalid request", errors=errors)


def _explain(error: dict[str, Any]) -> str:
    if error["type"] == "json_invalid":
        return error["msg"] if error["msg"].startswith("the body") else "the body is not valid JSON"
    if error["loc"] == ["body"] and error["type"] == "model_attributes_type":
        return "the body must be a JSON object (sent with Content-Type: application/json)"
    if error["loc"] == ["body"] and error["type"] == "missing":
        return "the body is missing: send a JSON object"
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI reads a body that is not UTF-8 as a 400 of its own; it is a body that is not JSON.
        not_json = {"loc": ["body"], "msg": "the body is not UTF-8 encoded JSON", "type": "json_invalid"}
        return _validation_problem(request, [not_json])
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_methods_of_path(request))
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    return problem_response(request, exc.status_code, detail, headers=headers)


def _methods_of_path(request: Request) -> list[str]:
    """Every method some route of this path answers. Starlette's own 405 names only the first
    route that matched the path, so a path with a GET and a PUT route claimed to allow one."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):  # the routes of included routers too
        match, _ = route.matches(request.scope)
        if match is not Match.NONE and route.methods:
            methods |= route.methods
    return sorted(methods)


class LastResort:
    """What no handler above took: the database being away (503 with Retry-After, no traceback: it is
    an operational event, not a bug) or a bug (500, logged with its traceback). Plain ASGI inside the
    request metrics, so they count the status the client got. Starlette's own last resort would
    answer a 500 and then re-raise, which a server logs as a crash."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def track(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, track)
        except Exception as exc:
            if started:  # too late to answer: let the server close the connection
                raise
            request = Request(scope)
            if is_database_outage(exc):
                log.warning("database unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
                response = problem_response(
                    request,
                    503,
                    f"the database is unreachable or restarting; retry in {RETRY_AFTER_S} s",
                    slug="database-unavailable",
                    title="Database unavailable",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            elif isinstance(exc, PoolTimeout):
                # Every pooled connection stayed busy for the pool's timeout: load, not a bug.
                log.warning("database pool exhausted", path=request.url.path)
                response = problem_response(
                    request,
                    503,
                    "every database connection is busy; retry in 1 s",
                    slug="overloaded",
                    title="Overloaded",
                    headers={"Retry-After": "1"},
                )
            else:
                log.exception("request failed", method=request.method, path=request.url.path)
                response = problem_response(request, 500, "an unexpected error; it has been logged")
            await response(scope, receive, send)


# -- the OpenAPI document -----------------------------------------------------------------------


def _problem(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}


# What FastAPI's `responses=` takes: {status code: the OpenAPI response object}.
Responses = dict[int | str, dict[str, Any]]


def problem_responses(
    descriptions: Mapping[int, str] | None = None, *, validated: bool = True, database: bool = True
) -> Responses:
    """The `responses` of an operation: the refusals it can answer (`{404: "no such order"}`), plus
    500, 422 when it has parameters or a body to validate, and 503 when it uses the database."""
    responses: dict[int, dict[str, Any]] = {500: _problem("a bug; it has been logged")}
    if validated:
        responses[422] = _problem(
            "the request does not match this document, or breaks a rule it states", ValidationProblem
        )
    if database:
        responses[503] = {
            **_problem("the database is unreachable, restarting or overloaded; retry after `Retry-After` seconds"),
            "headers": {
                "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
            },
        }
    for status, description in (descriptions or {}).items():
        if status == 422:
            responses[422]["description"] += f"; {description}"
        else:
            responses[status] = _problem(description)
    return dict(sorted(responses.items()))


def add_problem_schemas(document: dict[str, Any]) -> None:
    """Put Problem and ValidationProblem (and what they use) into the document's components."""
    _, definitions = models_json_schema(
        [(Problem, "serialization"), (ValidationProblem, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
