"""The gateway the payment service charges through, chosen by the `gateway` setting: the built-in
test gateway by default (behind the fault switch when a fault file is configured), or a real
gateway's adapter plugged in by its import path."""

import importlib
from collections.abc import Callable

from payment_service.domain import PaymentGateway, TestCardGateway
from payment_service.settings import Settings

from .fault_switch import FaultSwitch

GatewayFactory = Callable[[Settings], PaymentGateway]


def build_gateway(settings: Settings) -> PaymentGateway:
    if settings.gateway == "test":
        gateway = TestCardGateway()
        return FaultSwitch(gateway, settings.gateway_fault_file) if settings.gateway_fault_file else gateway
    module_name, _, factory_name = settings.gateway.partition(":")
    if not factory_name:
        raise ValueError(f"gateway must be 'test' or 'package.module:factory', got {settings.gateway!r}")
    factory: GatewayFactory = getattr(importlib.import_module(module_name), factory_name)
    return factory(settings)
