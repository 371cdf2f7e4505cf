"""The Debezium relay's setup (RELAY=debezium; docs/architecture.md "Debezium relay"), idempotent:

    connectors.py provision           as the Kafka admin: Connect's state topics (compacted, RF 3)
                                      and the connect principal's ACLs
    connectors.py prepare [SVC ...]   as the Postgres superuser: each service's CDC role, header
                                      columns, delete-on-insert trigger and publication
                                      (infra/connect/outbox_cdc.sql)
    connectors.py register [SVC ...]  PUT each service's connector config (infra/connect/connector.json)
                                      to Connect's REST API: creates it, or updates it in place
    connectors.py status              each connector's and task's state, and each slot's lag in bytes
    connectors.py remove SVC          once the slot has confirmed the WAL written before the call
                                      (what the outbox held is in Kafka), delete the connector, then
                                      its replication slot (a slot left behind keeps the WAL forever)
    connectors.py retire [SVC ...]    as the Postgres superuser: drop the delete-on-insert trigger, so
                                      the built-in relay finds the rows it must publish (make up runs
                                      it under RELAY=builtin); says which slots still hold WAL

SVC defaults to every service. The database password of <svc>_cdc is POSTGRES_CDC_PASSWORD_<SVC>,
else the development one (the role's name). Where Connect and the connectors reach things:
CONNECT_REST_URL (http://127.0.0.1:8083), CONNECT_DATABASE_HOST and CONNECT_DATABASE_PORT (the local
Postgres, 127.0.0.1:5433); docker-compose.yml sets them to its containers' names.

Its REST calls use the standard library alone (urllib), so that `register` runs in a service image
too (docker-compose.yml's connect-register job), which carries no HTTP client library.
"""

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from postgres_superuser import superuser_sql
from shared.kafka.acls import CONNECT_HEARTBEATS, CONNECT_STATE_TOPICS, connect_acls, grant
from shared.kafka.security import admin_client_config

REPO = Path(__file__).resolve().parents[2]
CONNECT_DIR = REPO / "infra" / "connect"
SCHEMAS = {"order": "orders", "payment": "payments", "inventory": "inventory"}
REST = os.environ.get("CONNECT_REST_URL", "http://127.0.0.1:8083")
DB_HOST = os.environ.get("CONNECT_DATABASE_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("CONNECT_DATABASE_PORT", "5433"))
TOPIC_ALREADY_EXISTS = 36


def connector_name(service: str) -> str:
    return f"{service}-outbox"


def slot_name(service: str) -> str:
    return f"{service}_outbox_slot"


def connector_config(service: str, schema: str, *, db_host: str = "127.0.0.1", db_port: int = 5433) -> dict[str, str]:
    """infra/connect/connector.json for one service's outbox."""
    password = os.environ.get(f"POSTGRES_CDC_PASSWORD_{service.upper()}", f"{service}_cdc")
    text = (CONNECT_DIR / "connector.json").read_text()
    for placeholder, value in {
        "@SERVICE@": service,
        "@SCHEMA@": schema,
        "@DB_HOST@": db_host,
        "@DB_PORT@": str(db_port),
        "@DB_PASSWORD@": password,
    }.items():
        text = text.replace(placeholder, value)
    config: dict[str, str] = json.loads(text)
    return config


async def provision_kafka() -> None:
    """Connect's state topics, compacted with RF 3 (the worker would create them with the same
    settings, but the connect principal may not create topics), the heartbeats' topic, and the
    connect principal's ACLs."""
    admin = AIOKafkaAdminClient(**admin_client_config(), client_id="connect-provisioning")
    await admin.start()
    try:
        partitions = {"connect-configs": 1, "connect-offsets": 5, "connect-status": 5}  # configs: exactly 1
        compacted = {"cleanup.policy": "compact", "min.insync.replicas": "2"}
        topics = [NewTopic(name, partitions[name], 3, topic_configs=compacted) for name in CONNECT_STATE_TOPICS]
        # The connectors' heartbeat rows (connector.json): read by nobody, kept an hour.
        topics.append(NewTopic(CONNECT_HEARTBEATS, 1, 3, topic_configs={"retention.ms": str(3_600_000)}))
        response = await admin.create_topics(topics, timeout_ms=30_000)
        for name, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {name} failed with error code {code}: {rest}")
        await grant(admin, connect_acls())
    finally:
        await admin.close()


def prepare_database(service: str, schema: str, *, delete_on_insert: bool = True) -> None:
    """infra/connect/outbox_cdc.sql for one service, as the superuser (it alters the outbox, creates a
    role and a publication)."""
    variables = {"svc": service, "schema": schema, "delete_on_insert": "on" if delete_on_insert else "off"}
    superuser_sql((CONNECT_DIR / "outbox_cdc.sql").read_text(), variables=variables)


def retire_database(service: str, schema: str) -> bool:
    """Give the outbox back to the built-in relay: without Connect, delete-on-insert would delete every
    event as it is written and nothing would publish it. The rest of the CDC setup stays (the header
    columns and their trigger, the publication, the role): harmless to the built-in relay, and a later
    switch back finds its slot's stream whole. Whether the service's slot still exists: it holds the
    WAL while no connector reads it (docs/runbook.md, "Choosing the relay")."""
    superuser_sql(f"DROP TRIGGER IF EXISTS outbox_delete_inserted ON {schema}.outbox")
    # A connector's heartbeat rows are for Connect alone: the built-in relay may not write that topic,
    # and one such row at the head of the outbox would stop its publishing.
    superuser_sql(f"DELETE FROM {schema}.outbox WHERE topic = '{CONNECT_HEARTBEATS}'")
    return slot_exists(slot_name(service))


def _call(method: str, url: str, body: object = None, timeout: float = 30) -> tuple[int, Any]:
    """One REST call: its status and its JSON body (None if empty, text if not JSON). An HTTP error status is
    returned, not raised; a connection failure raises OSError (urllib.error.URLError is one)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, (json.loads(text) if text.strip() else None)
    except ValueError:  # an error page of a proxy or a worker still starting: kept as text
        return status, text.decode(errors="replace")


def _ok(method: str, url: str, body: object = None, timeout: float = 30) -> Any:
    status, result = _call(method, url, body, timeout)
    if status >= 400:
        raise RuntimeError(f"{method} {url} answered {status}: {json.dumps(result)[:2000]}")
    return result


def register(name: str, config: dict[str, str], *, rest: str = REST) -> dict[str, Any]:
    """PUT /connectors/<name>/config: creates the connector, or updates its config in place."""
    result: dict[str, Any] = _ok("PUT", f"{rest}/connectors/{name}/config", config)
    return result


def wait_until_running(name: str, *, rest: str = REST, timeout: float = 60) -> dict[str, Any]:
    """The connector's status once it and its task run; raises with the last status otherwise."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, body = _call("GET", f"{rest}/connectors/{name}/status", timeout=10)
        if code == 200:
            status = body
            tasks = status.get("tasks", [])
            if status["connector"]["state"] == "RUNNING" and tasks and all(t["state"] == "RUNNING" for t in tasks):
                return status
            if any(t["state"] == "FAILED" for t in tasks):
                break
        time.sleep(0.5)
    raise RuntimeError(f"connector {name} is not running: {json.dumps(status)[:2000]}")


def remove(name: str, slot: str, *, rest: str = REST) -> None:
    """Stop the connector, reset its offsets, delete it, then drop its slot. The offsets (in
    connect-offsets, by connector name) outlive a deleted connector: one registered again under the
    name would resume from an LSN its new slot no longer has, and fail."""
    if _call("GET", f"{rest}/connectors/{name}", timeout=10)[0] == 200:
        _ok("PUT", f"{rest}/connectors/{name}/stop")
        _until(lambda: _state(name, rest) == "STOPPED", f"connector {name} stopped")
        _ok("DELETE", f"{rest}/connectors/{name}/offsets")
        _ok("DELETE", f"{rest}/connectors/{name}")
    drop = f"""
        SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
        WHERE slot_name = '{slot}' AND NOT active"""

    def dropped() -> bool:  # a walsender may hold the slot a moment after its task stopped
        superuser_sql(drop)
        return not slot_exists(slot)

    _until(dropped, f"replication slot {slot} dropped")


def _rest_answers() -> bool:
    try:
        return _call("GET", f"{REST}/", timeout=2)[0] == 200
    except OSError:  # not listening yet
        return False


def _state(name: str, rest: str) -> str | None:
    code, status = _call("GET", f"{rest}/connectors/{name}/status", timeout=10)
    return str(status["connector"]["state"]) if code == 200 else None


def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done after {timeout} s: {what}")
        time.sleep(0.5)


def slot_exists(slot: str) -> bool:
    return superuser_sql(f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'") != "0"


def slot_lag_bytes() -> dict[str, int]:
    """Each replication slot's lag: the WAL it holds back, from its confirmed position to now."""
    rows = superuser_sql(
        "SELECT slot_name || ' ' || pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
        " FROM pg_replication_slots WHERE confirmed_flush_lsn IS NOT NULL"
    )
    return {name: int(lag) for name, lag in (line.split() for line in rows.splitlines() if line)}


def wait_caught_up(slot: str, timeout: float = 60) -> None:
    """Until the slot has confirmed the WAL position of now: every row committed before the call has
    been decoded and published (the connector confirms positions it has handed to Kafka; a quiet
    outbox confirms on its next heartbeat row, within heartbeat.interval.ms)."""
    now = superuser_sql("SELECT pg_current_wal_lsn()")
    caught_up = (
        f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND confirmed_flush_lsn >= '{now}'"
    )
    _until(lambda: superuser_sql(caught_up) == "1", f"slot {slot} confirming the WAL up to {now}", timeout)


def print_status(services: Sequence[str]) -> None:
    lags = slot_lag_bytes()
    for service in services:
        code, status = _call("GET", f"{REST}/connectors/{connector_name(service)}/status", timeout=10)
        if code == 404:
            print(f"{connector_name(service):20} not registered")
            continue
        tasks = ", ".join(t["state"] for t in status["tasks"]) or "no task"
        lag = lags.get(slot_name(service))
        print(
            f"{connector_name(service):20} {status['connector']['state']:9} tasks: {tasks:10} "
            f"slot {slot_name(service)}: {'missing' if lag is None else f'{lag} bytes behind'}"
        )


def main(argv: list[str]) -> int:
    command, services = (argv[0] if argv else ""), (argv[1:] or list(SCHEMAS))
    unknown = [s for s in services if s not in SCHEMAS]
    if unknown:
        print(f"unknown service(s): {', '.join(unknown)} (known: {', '.join(SCHEMAS)})", file=sys.stderr)
        return 2
    if command == "provision":
        asyncio.run(provision_kafka())
        topics = ", ".join((*CONNECT_STATE_TOPICS, CONNECT_HEARTBEATS))
        print(f"connect: topics {topics} and the connect principal's ACLs in place")
    elif command == "prepare":
        for service in services:
            prepare_database(service, SCHEMAS[service])
    elif command == "register":
        _until(_rest_answers, f"Connect's REST API answers on {REST}", timeout=180)  # a worker just started
        for service in services:
            config = connector_config(service, SCHEMAS[service], db_host=DB_HOST, db_port=DB_PORT)
            register(connector_name(service), config)
            wait_until_running(connector_name(service))
            print(f"connect: {connector_name(service)} running")
    elif command == "status":
        if not _rest_answers():
            print(f"Kafka Connect does not answer on {REST} (.run/logs/connect.log)", file=sys.stderr)
            return 1
        print_status(services)
    elif command == "retire":
        for service in services:
            if retire_database(service, SCHEMAS[service]):
                print(
                    f"connect: {service}'s outbox is the built-in relay's; its slot {slot_name(service)} still holds"
                    " the WAL: once Connect has published what it holds, `connectors.py remove` it",
                    file=sys.stderr,
                )
    elif command == "remove" and argv[1:]:
        for service in services:
            wait_caught_up(slot_name(service))
            remove(connector_name(service), slot_name(service))
            print(f"connect: {connector_name(service)} and its slot {slot_name(service)} removed")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
