"""Who a Kafka client is: the connection settings every Kafka client of the system is built with.

Every listener of the cluster authenticates with SASL/SCRAM-SHA-512 and authorizes by ACL
(docs/security.md, "Kafka principals and ACLs"): a service connects as its own principal (its
ServiceSettings.kafka_client_config()), and provisioning, the tools, the tests, the demo and the
benchmark as `admin` (admin_client_config() below).
"""

import os
from typing import Any, Literal

SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT"]
MECHANISM = "SCRAM-SHA-512"
LOCAL_KAFKA = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
ADMIN = "admin"


def development_password(principal: str) -> str:
    """The fixed password of a principal in the local cluster and compose (infra/kafka/kafka.sh formats
    the storage with it). Known to anyone who reads this repository, so production refuses it."""
    return f"{principal}-kafka-dev"


def client_config(
    bootstrap_servers: str, username: str, password: str, security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
) -> dict[str, Any]:
    """The keyword arguments every aiokafka client (producer, consumer, admin) takes to reach the
    cluster as `username`. PLAINTEXT (no identity) is for a private test cluster only."""
    if security_protocol == "PLAINTEXT":
        return {"bootstrap_servers": bootstrap_servers, "security_protocol": "PLAINTEXT"}
    return {
        "bootstrap_servers": bootstrap_servers,
        "security_protocol": security_protocol,
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }


def admin_password() -> str:
    """KAFKA_ADMIN_PASSWORD, or the local development one."""
    return os.environ.get("KAFKA_ADMIN_PASSWORD", development_password(ADMIN))


def admin_client_config(bootstrap_servers: str | None = None) -> dict[str, Any]:
    """The admin principal's client settings, for the programs that are not a service: provisioning,
    the tests' own clients, the demo and the benchmark. The cluster is `bootstrap_servers`, else
    KAFKA_BOOTSTRAP_SERVERS, else the local one."""
    return client_config(
        bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", LOCAL_KAFKA), ADMIN, admin_password()
    )


def as_admin() -> dict[str, str]:
    """ServiceSettings overrides under which a service's own code connects as the admin: a test or a
    benchmark that runs it on scratch topics and groups, which no service's ACL grants."""
    return {"kafka_username": ADMIN, "kafka_password": admin_password()}
