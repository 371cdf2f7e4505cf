"""Each service's Kafka identity and ACLs (shared.kafka.acls, shared.kafka.security), as data: the
rules of docs/security.md "Kafka principals and ACLs". The integration tests (test_kafka_security.py)
show the brokers enforce them."""

import importlib

import pytest
from pydantic import ValidationError
from shared.events.topics import EVENT_TOPICS, WRITERS, dead_letter_topic
from shared.kafka.acls import (
    CONSUMES,
    Acl,
    Operation,
    ResourceType,
    all_acls,
    all_service_acls,
    monitor_acls,
    service_acls,
)
from shared.kafka.security import admin_client_config, development_password
from shared.settings import ServiceSettings

SERVICES = ("order", "payment", "inventory")


def topics_granted(service: str, operation: Operation) -> set[str]:
    return {
        acl.resource_name
        for acl in service_acls(service)
        if acl.resource_type is ResourceType.TOPIC and acl.operation is operation
    }


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_writes_only_its_own_topic_and_the_dead_letter_topics_of_what_it_consumes(service):
    own = next(topic for topic, writer in WRITERS.items() if writer == service)

    assert topics_granted(service, Operation.WRITE) == {own} | {dead_letter_topic(t) for t in CONSUMES[service]}


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_may_write_an_event_topic_another_service_owns(service):
    others = {topic for topic in EVENT_TOPICS if WRITERS[topic] != service}

    assert not topics_granted(service, Operation.WRITE) & others


def test_a_service_reads_the_topics_it_consumes_and_order_its_own_topic_for_the_rebuild_tool():
    assert topics_granted("order", Operation.READ) == {"inventory-events", "payment-events", "order-events"}
    assert topics_granted("payment", Operation.READ) == {"order-events", "inventory-events"}
    assert topics_granted("inventory", Operation.READ) == {"order-events", "payment-events"}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_use_its_own_consumer_group_only_and_no_transactional_id_or_cluster_resource(service):
    others = {acl for acl in service_acls(service) if acl.resource_type is not ResourceType.TOPIC}

    assert others == {Acl(f"User:{service}", ResourceType.GROUP, f"{service}-service", Operation.READ)}


@pytest.mark.parametrize("service", SERVICES)
def test_the_acl_consumer_group_is_the_one_the_service_joins_by_default(service):
    settings: ServiceSettings = importlib.import_module(f"{service}_service.settings").Settings()

    assert settings.group_id == f"{service}-service"


@pytest.mark.parametrize("service", SERVICES)
def test_what_a_service_may_read_is_what_its_worker_consumes(service):
    worker = importlib.import_module(f"{service}_service.entrypoints.worker")

    assert set(worker.TOPICS) == set(CONSUMES[service])


def test_every_acl_names_a_service_principal_and_no_wildcard():
    acls = all_service_acls()

    assert {acl.principal for acl in acls} == {f"User:{service}" for service in SERVICES}
    assert not [acl for acl in acls if "*" in acl.resource_name]


def test_the_monitor_may_describe_the_services_groups_and_every_event_and_dead_letter_topic_and_nothing_more():
    every_topic = {t for topic in EVENT_TOPICS for t in (topic, dead_letter_topic(topic))}

    assert set(monitor_acls()) == {
        *(Acl("User:monitor", ResourceType.GROUP, f"{service}-service", Operation.DESCRIBE) for service in SERVICES),
        *(Acl("User:monitor", ResourceType.TOPIC, topic, Operation.DESCRIBE) for topic in every_topic),
    }


def test_provisioning_grants_the_services_acls_and_the_monitors():
    assert set(all_acls()) == set(all_service_acls()) | set(monitor_acls())


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_connects_as_its_own_principal_over_sasl_scram(service):
    settings: ServiceSettings = importlib.import_module(f"{service}_service.settings").Settings()

    for config in (settings.kafka_client_config(), settings.producer_config(), settings.consumer_config()):
        assert config["security_protocol"] == "SASL_PLAINTEXT"
        assert config["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (config["sasl_plain_username"], config["sasl_plain_password"]) == (
            service,
            development_password(service),
        )


def test_the_tools_and_tests_connect_as_the_admin():
    config = admin_client_config("127.0.0.1:1")

    assert (config["bootstrap_servers"], config["sasl_plain_username"]) == ("127.0.0.1:1", "admin")


def production(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "service_name": "order",
        "environment": "production",
        "database_url": "postgresql+asyncpg://order_svc:s3cret@db:5432/ecommerce",
        "db_ssl": "verify-full",
        "db_schema": "orders",
        "http_port": 8001,
        "relay_metrics_port": 9101,
        "worker_metrics_port": 9201,
        **overrides,
    }
    return ServiceSettings(**values)  # type: ignore[arg-type]


def test_production_refuses_to_start_without_a_kafka_password():
    with pytest.raises(ValidationError, match="kafka_password is unset or the development one"):
        production()


def test_production_refuses_the_development_kafka_password():
    with pytest.raises(ValidationError, match="kafka_password is unset or the development one"):
        production(kafka_password=development_password("order"))
    assert production(kafka_password="an0ther-s3cret").kafka_client_config()["sasl_plain_password"] == "an0ther-s3cret"


def test_production_refuses_a_kafka_connection_without_authentication():
    with pytest.raises(ValidationError, match="kafka_security_protocol must authenticate"):
        production(kafka_password="an0ther-s3cret", kafka_security_protocol="PLAINTEXT")
