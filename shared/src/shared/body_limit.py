"""A ceiling on request bodies (OWASP API4, unrestricted resource consumption): a body larger than
the service's `http_max_body_bytes` is refused with a 413 problem before anything parses it.

- A declared Content-Length over the limit is refused before the app runs at all: no route, no
  dependency, not even authentication, sees the request, and the body is never read.
- A body without a length (chunked) is counted as it streams in: the read that passes the limit
  raises BodyTooLarge, an HTTPException the problem handlers answer (shared.problems), and the rest
  of the body is never read.

Starlette's own limit (FastAPI's `max_body_size`) checks a declared length only when the body is read
or the answer starts, so a route that reads no body (POST /orders/{id}/cancel) would run first; and
it answers in plain text rather than with a problem.
"""

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import problem_response

# The body left unread, the connection cannot carry another request.
CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes", headers=CLOSE)


class BodySizeLimit:
    """Plain ASGI, outside everything but the request metrics (which count the 413s)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max_bytes:
            too_large = BodyTooLarge(self._max_bytes)
            response = problem_response(Request(scope), 413, too_large.detail, headers=CLOSE)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise BodyTooLarge(self._max_bytes)
            return message

        await self._app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; a malformed one is the server's to refuse (uvicorn answers 400)."""
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None
