"""Who may do what on the running cluster (docs/security.md, "Kafka principals and ACLs"): every
listener authenticates, and a service's principal may do only what shared.kafka.acls grants it.

What each service may do is also exercised by the tests that run its worker and relay as its own
principal, and by the e2e saga; these tests are the refusals. Nothing is written to a topic: every
attempt is refused before a record is accepted.
"""

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from shared.events.topics import INVENTORY_EVENTS, ORDER_EVENTS, PAYMENT_EVENTS, TOPIC_SPECS, dead_letter_topic
from shared.kafka.acls import consumer_group
from shared.kafka.provisioning import MissingTopics, check_topics
from shared.kafka.security import ADMIN, admin_password, client_config, development_password

pytestmark = pytest.mark.infra

TOPIC_AUTHORIZATION_FAILED = 29
TIMEOUT_S = 30


def ports(bootstrap_servers: str) -> list[int]:
    return [int(address.rsplit(":", 1)[1]) for address in bootstrap_servers.split(",")]


def controller_ports(bootstrap_servers: str) -> list[int]:
    """Each local node's controller listener is on the port after its client listener (kafka.sh)."""
    return [port + 1 for port in ports(bootstrap_servers)]


def as_service(bootstrap_servers: str, service: str, password: str | None = None) -> dict[str, Any]:
    return client_config(bootstrap_servers, service, password or development_password(service))


@asynccontextmanager
async def started(client: Any) -> AsyncIterator[Any]:
    await client.start()
    try:
        yield client
    finally:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


OTHERS_TOPICS = [
    ("order", PAYMENT_EVENTS),
    ("order", INVENTORY_EVENTS),
    ("payment", ORDER_EVENTS),
    ("payment", INVENTORY_EVENTS),
    ("inventory", ORDER_EVENTS),
    ("inventory", PAYMENT_EVENTS),
    ("payment", dead_letter_topic(PAYMENT_EVENTS)),  # a DLT of a topic payment does not consume
]


@pytest.mark.parametrize(("service", "topic"), OTHERS_TOPICS)
async def test_a_service_principal_may_not_produce_to_a_topic_it_does_not_own(bootstrap_servers, service, topic):
    producer = AIOKafkaProducer(**as_service(bootstrap_servers, service), acks="all", enable_idempotence=True)
    async with started(producer):
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait(topic, b"forged", key=b"forged"), TIMEOUT_S)


UNCONSUMED = [
    ("payment", PAYMENT_EVENTS),
    ("inventory", INVENTORY_EVENTS),
    ("order", dead_letter_topic(PAYMENT_EVENTS)),  # dead letters wait for an operator, as the admin
]


@pytest.mark.parametrize(("service", "topic"), UNCONSUMED)
async def test_a_service_principal_may_not_read_a_topic_it_does_not_consume(bootstrap_servers, service, topic):
    consumer = AIOKafkaConsumer(**as_service(bootstrap_servers, service), group_id=None)
    async with started(consumer):
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(consumer.getmany(timeout_ms=5000), TIMEOUT_S)


async def test_a_service_principal_may_not_join_another_services_consumer_group(bootstrap_servers):
    # payment consumes order-events too, so only the group is refused here.
    consumer = AIOKafkaConsumer(
        ORDER_EVENTS, **as_service(bootstrap_servers, "payment"), group_id=consumer_group("order")
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.start()  # joins the group (refused here, or at its first fetch)
            await asyncio.wait_for(consumer.getmany(timeout_ms=5000), TIMEOUT_S)
    finally:
        await consumer.stop()


async def test_a_service_principal_may_not_create_a_topic(bootstrap_servers, unique_topic_name):
    async with started(AIOKafkaAdminClient(**as_service(bootstrap_servers, "order"))) as admin:
        response = await admin.create_topics([NewTopic(unique_topic_name, 1, 3)])
    assert [(name, code) for name, code, *_ in response.topic_errors] == [
        (unique_topic_name, TOPIC_AUTHORIZATION_FAILED)
    ]


async def test_a_service_start_up_check_finds_a_missing_topic_and_creates_nothing(
    bootstrap_servers, kafka_admin, unique_topic_name
):
    missing = dataclasses.replace(TOPIC_SPECS[0], name=unique_topic_name)
    with pytest.raises(MissingTopics, match=unique_topic_name):
        await check_topics(as_service(bootstrap_servers, "order"), [missing])
    assert unique_topic_name not in await kafka_admin.list_topics()


async def test_each_service_principal_passes_its_start_up_check_of_the_event_topics(bootstrap_servers):
    for service in ("order", "payment", "inventory"):
        await check_topics(as_service(bootstrap_servers, service))


async def test_a_wrong_password_is_refused_where_the_right_one_is_accepted(bootstrap_servers):
    async with started(AIOKafkaAdminClient(**as_service(bootstrap_servers, "order"))) as admin:
        assert (await admin.describe_cluster())["brokers"]
    with pytest.raises(KafkaConnectionError):
        await AIOKafkaAdminClient(**as_service(bootstrap_servers, "order", password="not-the-password")).start()


async def test_a_client_without_credentials_cannot_bootstrap(bootstrap_servers):
    with pytest.raises(KafkaConnectionError):
        await AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000).start()


# Kafka's wire format, to say precisely what an unauthenticated client gets: a SASL listener answers
# ApiVersions and the SASL handshake only, and closes the connection at any other request.
def metadata_request_v1() -> bytes:
    """Metadata v1 for every topic (api key 3; request header v1: key, version, correlation id,
    client id)."""
    body = struct.pack(">hhih", 3, 1, 7, len(b"probe")) + b"probe" + struct.pack(">i", -1)
    return struct.pack(">i", len(body)) + body


def describe_cluster_request_v1() -> bytes:
    """DescribeCluster v1 (api key 60), as a client asks a controller (KIP-919): request header v2
    (with an empty tagged-field section), then include_cluster_authorized_operations=false,
    endpoint_type=2 (controller), no tagged fields."""
    body = struct.pack(">hhih", 60, 1, 7, len(b"probe")) + b"probe" + b"\x00" + b"\x00\x02\x00"
    return struct.pack(">i", len(body)) + body


async def answer_to(port: int, request: bytes) -> bytes:
    """The first bytes of the listener's answer (a response's length), or b"" if it closed the
    connection instead."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4), TIMEOUT_S)
    finally:
        writer.close()


async def test_an_unauthenticated_request_to_a_client_listener_is_answered_by_closing_the_connection(
    bootstrap_servers,
):
    for port in ports(bootstrap_servers):
        assert await answer_to(port, metadata_request_v1()) == b""


async def test_an_unauthenticated_request_to_a_controller_listener_is_answered_by_closing_the_connection(
    bootstrap_servers,
):
    for port in controller_ports(bootstrap_servers):
        assert await answer_to(port, describe_cluster_request_v1()) == b""


async def test_a_client_principal_cannot_authenticate_to_a_controller_listener(bootstrap_servers):
    # Its users are the brokers' own PLAIN user alone: SCRAM is not even offered there.
    (port, *_) = controller_ports(bootstrap_servers)
    admin = AIOKafkaAdminClient(**client_config(f"127.0.0.1:{port}", ADMIN, admin_password()))
    with pytest.raises(KafkaConnectionError):
        await admin.start()
