"""Every dependency of every route of the three services is async, so FastAPI calls it inline: a
plain `def` dependency (or endpoint) runs in a worker thread, a thread hand-off on every request,
which on this machine costs more than most dependencies' own work."""

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from inventory_service.entrypoints.api import create_app as create_inventory_app
from order_service.entrypoints.api import create_app as create_order_app
from payment_service.entrypoints.api import create_app as create_payment_app

SERVICES = {"order": create_order_app, "payment": create_payment_app, "inventory": create_inventory_app}


def is_async(call: Callable[..., Any]) -> bool:
    """What FastAPI itself tests before it decides to run a call in the thread pool."""
    dunder_call = getattr(call, "__call__", None)  # noqa: B004  # a class instance (HTTPBearer) is called by it
    return any(
        inspect.iscoroutinefunction(c) or inspect.isasyncgenfunction(c) for c in (call, dunder_call) if c is not None
    )


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """The app's routes, through the routers it includes (kept apart, as `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def calls_of(dependant: Dependant) -> Iterator[tuple[str, Callable[..., Any]]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield getattr(sub.call, "__qualname__", type(sub.call).__name__), sub.call
        yield from calls_of(sub)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_and_each_of_its_dependencies_is_async(service: str) -> None:
    app: FastAPI = SERVICES[service]()
    routes = list(api_routes(app.routes))
    assert len([route for route in routes if route.path.startswith("/docs")]) < len(routes) / 2
    run_in_a_thread = [
        f"{' '.join(sorted(route.methods))} {route.path}: {name}"
        for route in routes
        for name, call in [(route.endpoint.__qualname__, route.endpoint), *calls_of(route.dependant)]
        if not is_async(call)
    ]
    assert not run_in_a_thread
