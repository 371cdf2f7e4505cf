"""Wires the payment handlers to their gateway: the built-in test gateway by default, or the one
named by the `gateway` setting."""

import importlib
from collections.abc import Mapping
from functools import partial

from shared.consumer.worker import Handler
from shared.events import OrderCancelled, OrderCreated, OrderRejected, StockReserved

from payment_service.domain import PaymentGateway, TestCardGateway
from payment_service.service_layer import handlers
from payment_service.settings import Settings


def build_gateway(settings: Settings) -> PaymentGateway:
    if settings.gateway == "test":
        return TestCardGateway()
    module_name, _, factory_name = settings.gateway.partition(":")
    if not factory_name:
        raise ValueError(f"gateway must be 'test' or 'package.module:factory', got {settings.gateway!r}")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(settings)


def build_handlers(gateway: PaymentGateway) -> Mapping[str, Handler]:
    return {
        OrderCreated.event_type: partial(handlers.record_order, gateway=gateway),
        StockReserved.event_type: partial(handlers.record_reservation, gateway=gateway),
        OrderCancelled.event_type: partial(handlers.cancel_payment, gateway=gateway),
        OrderRejected.event_type: partial(handlers.cancel_payment, gateway=gateway),
    }
