"""Which gateway the payment worker charges through, chosen by settings."""

import pytest
from payment_service.bootstrap import build_gateway, build_handlers
from payment_service.domain import TestCardGateway
from payment_service.settings import Settings
from pydantic import ValidationError


class PluggedGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def plugged_gateway(settings: Settings) -> PluggedGateway:
    return PluggedGateway(settings)


def test_the_built_in_test_gateway_is_the_default():
    assert isinstance(build_gateway(Settings()), TestCardGateway)


def test_another_gateway_is_plugged_in_by_its_import_path():
    settings = Settings(gateway=f"{__name__}:plugged_gateway")

    gateway = build_gateway(settings)

    assert isinstance(gateway, PluggedGateway) and gateway.settings is settings


def test_a_gateway_setting_that_names_no_factory_is_refused():
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        build_gateway(Settings(gateway="stripe"))


def test_production_refuses_the_test_gateway_that_moves_no_money():
    with pytest.raises(ValidationError, match="test gateway"):
        Settings(environment="production", database_url="postgresql+asyncpg://payment_svc:s3cret@db/ecommerce")


def test_the_worker_reacts_to_the_order_its_reservation_and_its_end():
    assert set(build_handlers(TestCardGateway())) == {
        "OrderCreated",
        "StockReserved",
        "OrderCancelled",
        "OrderRejected",
    }
