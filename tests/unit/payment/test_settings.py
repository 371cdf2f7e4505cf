"""The payment settings refuse what would move no money, or make one call twice, in production."""

from pathlib import Path

import pytest
from payment_service.settings import Settings
from pydantic import ValidationError


def test_the_fault_file_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYMENT_GATEWAY_FAULT_FILE", "/run/gateway-fault")

    assert Settings().gateway_fault_file == Path("/run/gateway-fault")


def test_a_fault_file_with_a_real_gateway_is_refused():
    with pytest.raises(ValidationError, match="test gateway only"):
        Settings(gateway="a_gateway.module:factory", gateway_fault_file=Path("/tmp/fault"))


def test_a_claim_lease_no_longer_than_the_gateway_timeout_is_refused():
    with pytest.raises(ValidationError, match="executor_lease_s"):
        Settings(gateway_timeout_s=5, executor_lease_s=5)


def test_production_refuses_the_test_gateway_that_moves_no_money():
    with pytest.raises(ValidationError, match="test gateway"):
        Settings(
            environment="production",
            database_url="postgresql+asyncpg://payment_svc:s3cret@db/ecommerce",
            db_ssl="verify-full",
            kafka_password="an0ther-s3cret",
        )
