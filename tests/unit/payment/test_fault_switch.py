"""The gateway fault switch (PAYMENT_GATEWAY_FAULT_FILE): what the file says, the test gateway does."""

import asyncio
import os
from uuid import uuid4

import pytest
from payment_service.adapters.fault_switch import FaultSwitch
from payment_service.domain import GatewayUnavailable, TestCardGateway

CHARGE = {"token": "tok_visa", "amount": 100, "currency": "EUR", "idempotency_key": "charge:x"}


@pytest.fixture
def fault_file(tmp_path):
    return tmp_path / "gateway-fault"


@pytest.fixture
def gateway(fault_file):
    return FaultSwitch(TestCardGateway(), fault_file)


async def test_without_a_fault_file_the_gateway_answers_normally(gateway):
    assert (await gateway.charge(**CHARGE)).approved


@pytest.mark.parametrize("content", ["", "\n", "nothing we know"])
async def test_an_empty_or_unknown_fault_file_injects_nothing(gateway, fault_file, content):
    fault_file.write_text(content)

    assert (await gateway.charge(**CHARGE)).approved


async def test_error_makes_every_call_fail_as_an_unavailable_gateway(gateway, fault_file):
    fault_file.write_text("error\n")

    with pytest.raises(GatewayUnavailable):
        await gateway.charge(**CHARGE)
    with pytest.raises(GatewayUnavailable):
        await gateway.refund(payment_id=uuid4(), amount=100, currency="EUR", idempotency_key="refund:x")


async def test_hang_makes_a_call_wait_until_its_caller_gives_up(gateway, fault_file):
    fault_file.write_text("hang")

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await gateway.charge(**CHARGE)


async def test_the_switch_follows_the_file_as_it_is_changed_and_removed(gateway, fault_file):
    fault_file.write_text("error")
    with pytest.raises(GatewayUnavailable):
        await gateway.charge(**CHARGE)

    fault_file.write_text("hang")
    os.utime(fault_file, ns=(1, 1))  # another modification time, even on a coarse-grained clock
    assert gateway.current_fault() == "hang"

    fault_file.unlink()
    assert (await gateway.charge(**CHARGE)).approved
