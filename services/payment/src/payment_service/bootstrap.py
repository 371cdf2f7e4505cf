"""Wires the payment worker: the gateway named by the `gateway` setting (the built-in test gateway
by default, behind the fault switch when one is configured), the event handlers and their unit of
work, and the executor that makes the gateway calls the handlers decide."""

import importlib
from collections.abc import Awaitable, Callable
from functools import partial

from shared.consumer import Consumption, Handler
from shared.events import OrderCancelled, OrderCreated, OrderRejected, StockReserved

from payment_service.adapters.fault_switch import FaultSwitch
from payment_service.domain import PaymentGateway, TestCardGateway
from payment_service.service_layer import handlers
from payment_service.settings import Settings


def build_gateway(settings: Settings) -> PaymentGateway:
    if settings.gateway == "test":
        gateway = TestCardGateway()
        return FaultSwitch(gateway, settings.gateway_fault_file) if settings.gateway_fault_file else gateway
    module_name, _, factory_name = settings.gateway.partition(":")
    if not factory_name:
        raise ValueError(f"gateway must be 'test' or 'package.module:factory', got {settings.gateway!r}")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(settings)


def build_handlers(gateway_name: str, on_intent: Callable[[], None] = lambda: None) -> Consumption:
    """`gateway_name` is recorded with each charge intent; `on_intent` is called after the commit
    of every transaction that recorded one (it wakes the executor)."""

    def bind(handler: Callable[..., Awaitable[None]]) -> Handler:
        return partial(handler, gateway=gateway_name, on_intent=on_intent)

    return Consumption(
        handlers={
            OrderCreated.event_type: bind(handlers.record_order),
            StockReserved.event_type: bind(handlers.record_reservation),
            OrderCancelled.event_type: bind(handlers.cancel_payment),
            OrderRejected.event_type: bind(handlers.cancel_payment),
        },
        open_batch=handlers.open_batch,
    )
