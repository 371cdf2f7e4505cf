"""Which gateway the payment worker charges through, chosen by settings."""

from pathlib import Path

import pytest
from payment_service.adapters.fault_switch import FaultSwitch
from payment_service.bootstrap import build_gateway, build_handlers
from payment_service.domain import TestCardGateway
from payment_service.service_layer.handlers import open_batch
from payment_service.settings import Settings
from pydantic import ValidationError


class PluggedGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def plugged_gateway(settings: Settings) -> PluggedGateway:
    return PluggedGateway(settings)


def test_the_built_in_test_gateway_is_the_default():
    assert isinstance(build_gateway(Settings()), TestCardGateway)


def test_a_fault_file_puts_the_test_gateway_behind_the_fault_switch(tmp_path):
    assert isinstance(build_gateway(Settings(gateway_fault_file=tmp_path / "fault")), FaultSwitch)


def test_the_fault_file_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYMENT_GATEWAY_FAULT_FILE", "/run/gateway-fault")

    assert Settings().gateway_fault_file == Path("/run/gateway-fault")


def test_a_fault_file_with_a_real_gateway_is_refused():
    with pytest.raises(ValidationError, match="test gateway only"):
        Settings(gateway=f"{__name__}:plugged_gateway", gateway_fault_file=Path("/tmp/fault"))


def test_a_claim_lease_no_longer_than_the_gateway_timeout_is_refused():
    with pytest.raises(ValidationError, match="executor_lease_s"):
        Settings(gateway_timeout_s=5, executor_lease_s=5)


def test_another_gateway_is_plugged_in_by_its_import_path():
    settings = Settings(gateway=f"{__name__}:plugged_gateway")

    gateway = build_gateway(settings)

    assert isinstance(gateway, PluggedGateway) and gateway.settings is settings


def test_a_gateway_setting_that_names_no_factory_is_refused():
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        build_gateway(Settings(gateway="stripe"))


def test_production_refuses_the_test_gateway_that_moves_no_money():
    with pytest.raises(ValidationError, match="test gateway"):
        Settings(
            environment="production",
            database_url="postgresql+asyncpg://payment_svc:s3cret@db/ecommerce",
            db_ssl="verify-full",
        )


def test_the_worker_reacts_to_the_order_its_reservation_and_its_end():
    consumption = build_handlers("test")

    assert set(consumption.handlers) == {"OrderCreated", "StockReserved", "OrderCancelled", "OrderRejected"}


def test_the_worker_handles_its_events_in_the_payment_unit_of_work():
    assert build_handlers("test").open_batch is open_batch
