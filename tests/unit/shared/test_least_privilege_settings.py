"""Settings that keep each process to what it needs: migrations as the schema's owner and nothing else
as it, no development password in production, and listeners on the loopback unless told otherwise."""

import importlib
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from shared.metrics import serve_metrics
from shared.migrations import owner_url
from shared.settings import ServiceSettings

SERVICES = ("order", "payment", "inventory")


def settings_class(svc: str) -> type[ServiceSettings]:
    cls: type[ServiceSettings] = importlib.import_module(f"{svc}_service.settings").Settings
    return cls


def production(svc: str, **overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "environment": "production",
        "database_url": f"postgresql+asyncpg://{svc}_svc:s3cret@db:5432/ecommerce",
        "db_ssl": "verify-full",
        "kafka_password": "an0ther-s3cret",
        **({"gateway": "a_gateway.module:factory"} if svc == "payment" else {}),
        **overrides,
    }
    return settings_class(svc)(**values)


@pytest.mark.parametrize("svc", SERVICES)
def test_in_development_a_service_runs_as_its_runtime_role_and_migrates_as_its_schemas_owner(svc):
    settings = settings_class(svc)()

    assert urlsplit(settings.database_url).username == f"{svc}_svc"
    assert settings.migration_database_url is not None
    assert urlsplit(settings.migration_database_url).username == f"{svc}_owner"
    assert owner_url(settings) == settings.migration_database_url


@pytest.mark.parametrize("svc", SERVICES)
def test_in_production_no_process_holds_the_owners_url_unless_it_is_given(svc):
    settings = production(svc)

    assert settings.migration_database_url is None
    with pytest.raises(RuntimeError, match=f"set {svc.upper()}_MIGRATION_DATABASE_URL"):
        owner_url(settings)


@pytest.mark.parametrize("svc", SERVICES)
def test_production_refuses_the_development_password_of_the_owner_role(svc):
    development_owner = f"postgresql+asyncpg://{svc}_owner:{svc}_owner@db:5432/ecommerce"
    real_owner = f"postgresql+asyncpg://{svc}_owner:an0ther@db:5432/ecommerce"

    with pytest.raises(ValidationError, match="migration_database_url uses the development password"):
        production(svc, migration_database_url=development_owner)
    assert production(svc, migration_database_url=real_owner).migration_database_url == real_owner


def test_the_apis_and_the_metrics_listen_on_the_loopback_unless_told_otherwise():
    fields = ServiceSettings.model_fields

    assert fields["http_host"].default == "127.0.0.1"
    assert fields["metrics_host"].default == "127.0.0.1"


def test_a_relays_or_workers_metrics_server_listens_on_the_host_it_is_given():
    server = serve_metrics(0, "127.0.0.1")
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
