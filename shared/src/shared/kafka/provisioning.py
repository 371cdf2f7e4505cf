"""Create the event topics and their dead-letter topics idempotently, and refuse drift.

`make up` (infra/scripts/provision_topics.py) and compose's provisioning job create them as the admin
principal (`ensure_topics`), with the services' ACLs (shared.kafka.acls). A service may not create a
topic: at start-up it checks them (`check_topics`) and stops with a clear error if one is missing. A
topic that already exists with other settings is reported, never silently accepted: fewer partitions
would break per-key ordering assumptions, a lower replication factor or min ISR would weaken
durability.

`kafka` is an aiokafka client's connection settings: ServiceSettings.kafka_client_config() or
shared.kafka.security.admin_client_config().

Where the partitions' leaders live is a deployment choice (`leader`): spread over the brokers, as
Kafka places them (the default, locally and in compose), or all on one broker. On brokers sharing a
machine the latter costs fewer requests (each broker a client talks to is another fetch session and
produce request for the same cores), but the loss of that broker stalls every partition at once
(docs/numbers.md). Either way each partition keeps its three replicas and fails over to the next.
"""

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError

from shared.events.topics import TOPIC_SPECS, TopicSpec
from shared.kafka.acls import all_acls, grant

TOPIC_ALREADY_EXISTS = 36


class TopicMismatch(Exception):
    """An existing topic's settings differ from its spec."""


class MissingTopics(Exception):
    """A topic a service needs does not exist: provisioning (make up, compose's job) has not run."""


@dataclass
class ProvisioningReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


class TopicSettings(TypedDict):
    """What a broker says of an existing topic, in the terms of a TopicSpec."""

    partitions: int
    replication_factor: int
    config: dict[str, str | None]  # every config entry of the topic (a sensitive one's value is None)


async def describe_topic_settings(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicSettings]:
    """Partitions, replication factor and the spec'd config values of each named topic."""
    described = await admin.describe_topics(names)
    settings: dict[str, TopicSettings] = {}
    for topic in described:
        partitions = topic["partitions"]
        settings[topic["topic"]] = {
            "partitions": len(partitions),
            "replication_factor": min((len(p["replicas"]) for p in partitions), default=0),
            "config": {},
        }
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    for response in responses:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, configs)
            error_code, name, configs = resource[0], resource[3], resource[4]
            if error_code == 0 and name in settings:
                settings[name]["config"] = {entry[0]: entry[1] for entry in configs}
    return settings


def compare(spec: TopicSpec, actual: TopicSettings) -> list[str]:
    problems = []
    if actual["partitions"] != spec.partitions:
        problems.append(f"{spec.name}: {actual['partitions']} partitions, expected {spec.partitions}")
    if actual["replication_factor"] != spec.replication_factor:
        problems.append(
            f"{spec.name}: replication factor {actual['replication_factor']}, expected {spec.replication_factor}"
        )
    for key, expected in spec.config.items():
        found = actual["config"].get(key)
        if found != expected:
            problems.append(f"{spec.name}: {key}={found}, expected {expected}")
    return problems


async def check_topics(kafka: Mapping[str, Any], specs: Iterable[TopicSpec] = TOPIC_SPECS) -> None:
    """A service's start-up check: every topic exists with its spec's settings. Creates nothing."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(**kafka, client_id="topic-check")
    await admin.start()
    try:
        existing = set(await admin.list_topics())  # the topics this principal may describe
        missing = [s.name for s in specs if s.name not in existing]
        if missing:
            raise MissingTopics(
                f"topics {', '.join(missing)} do not exist (or this principal may not describe them): "
                "provision them as the admin (make up, or compose's kafka-provisioning job)"
            )
        actual = await describe_topic_settings(admin, [s.name for s in specs])
    finally:
        await admin.close()
    mismatches = [problem for spec in specs for problem in compare(spec, actual[spec.name])]
    if mismatches:
        raise TopicMismatch("; ".join(mismatches))


def replica_assignment(spec: TopicSpec, brokers: Sequence[int], leader: int) -> dict[int, list[int]]:
    """Each partition's replicas with `leader` first (its preferred leader); the others take turns
    as second, so a failed leader's partitions are spread over the remaining brokers."""
    if leader not in brokers:
        raise ValueError(f"the leader broker {leader} is not in the cluster (brokers {sorted(brokers)})")
    if spec.replication_factor > len(brokers):
        raise ValueError(f"{spec.name}: replication factor {spec.replication_factor} > {len(brokers)} brokers")
    others = sorted(b for b in brokers if b != leader)
    assignment = {}
    for partition in range(spec.partitions):
        turn = partition % len(others) if others else 0
        assignment[partition] = [leader, *(others[turn:] + others[:turn])][: spec.replication_factor]
    return assignment


def new_topic(spec: TopicSpec, brokers: Sequence[int], leader: int | None) -> NewTopic:
    if leader is None:
        return NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.config)
    return NewTopic(
        spec.name, -1, -1, replica_assignments=replica_assignment(spec, brokers, leader), topic_configs=spec.config
    )


async def ensure_topics(
    kafka: Mapping[str, Any],
    specs: Iterable[TopicSpec] = TOPIC_SPECS,
    *,
    strict: bool = True,
    leader: int | None = None,
) -> ProvisioningReport:
    """Create missing topics (with every partition's preferred leader on broker `leader`, if given;
    else placed by Kafka); check existing ones. Raises TopicMismatch on drift when strict.
    Needs a principal that may create topics: the admin."""
    specs = list(specs)
    report = ProvisioningReport()
    admin = AIOKafkaAdminClient(**kafka, client_id="topic-provisioning")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            brokers = [b["node_id"] for b in (await admin.describe_cluster())["brokers"]] if leader is not None else []
            response = await admin.create_topics([new_topic(s, brokers, leader) for s in missing], timeout_ms=30_000)
            for name, code, *rest in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):  # another service may have won the race
                    raise KafkaError(f"creating topic {name} failed with error code {code}: {rest}")
            report.created = [s.name for s in missing]
        report.existing = [s.name for s in specs if s.name in existing]
        # Metadata of just-created topics can lag a moment behind on other brokers.
        actual = await _describe_when_visible(admin, [s.name for s in specs])
        for spec in specs:
            report.mismatches.extend(compare(spec, actual[spec.name]))
    finally:
        await admin.close()
    if strict and report.mismatches:
        raise TopicMismatch("; ".join(report.mismatches))
    return report


async def _describe_when_visible(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicSettings]:
    deadline = time.monotonic() + 30
    while True:
        settings = await describe_topic_settings(admin, names)
        # A broker that has not caught up describes a new topic with no partitions, or with no
        # configs (an error for that resource): either is "not yet", never a mismatch.
        visible = all(n in settings and settings[n]["partitions"] and settings[n]["config"] for n in names)
        if visible or time.monotonic() > deadline:
            return settings
        await asyncio.sleep(0.5)


async def provision(kafka: Mapping[str, Any], *, leader: int | None = None) -> ProvisioningReport:
    """As the admin: the event topics (ensure_topics), then every principal's ACLs. Idempotent."""
    report = await ensure_topics(kafka, leader=leader)
    admin = AIOKafkaAdminClient(**kafka, client_id="acl-provisioning")
    await admin.start()
    try:
        await grant(admin, all_acls())
    finally:
        await admin.close()
    return report


async def wait_for_cluster(kafka: Mapping[str, Any], *, brokers: int = 3, timeout: float = 120) -> None:
    """Return once `brokers` brokers are registered and a controller is elected."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(**kafka, client_id="readiness")
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            if len(cluster["brokers"]) >= brokers and cluster.get("controller_id", -1) >= 0:
                return
            last_error = RuntimeError(f"{len(cluster['brokers'])} of {brokers} brokers registered")
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            last_error = exc
        finally:
            await admin.close()
        await asyncio.sleep(1)
    raise TimeoutError(f"Kafka cluster at {kafka['bootstrap_servers']} not ready after {timeout}s: {last_error}")
