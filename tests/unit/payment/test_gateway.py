"""Which gateway the payment worker charges through, chosen by settings (adapters/gateway.py)."""

import pytest
from payment_service.adapters.fault_switch import FaultSwitch
from payment_service.adapters.gateway import build_gateway
from payment_service.domain import TestCardGateway
from payment_service.settings import Settings


class PluggedGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def plugged_gateway(settings: Settings) -> PluggedGateway:
    return PluggedGateway(settings)


def test_the_built_in_test_gateway_is_the_default():
    assert isinstance(build_gateway(Settings()), TestCardGateway)


def test_a_fault_file_puts_the_test_gateway_behind_the_fault_switch(tmp_path):
    assert isinstance(build_gateway(Settings(gateway_fault_file=tmp_path / "fault")), FaultSwitch)


def test_another_gateway_is_plugged_in_by_its_import_path():
    settings = Settings(gateway=f"{__name__}:plugged_gateway")

    gateway = build_gateway(settings)

    assert isinstance(gateway, PluggedGateway) and gateway.settings is settings


def test_a_gateway_setting_that_names_no_factory_is_refused():
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        build_gateway(Settings(gateway="stripe"))
