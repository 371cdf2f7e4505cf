"""Wait for the Kafka cluster, then, as the admin principal, create or check the event topics and
grant every principal's ACLs (idempotent: make up runs it at every start, compose as a one-shot job).

KAFKA_TOPIC_LEADER: the broker that leads every partition of a topic this creates; unset or empty
(the local stack and compose), Kafka spreads the leaders. One leader broker costs brokers sharing a
machine fewer requests, but its loss stalls every partition at once (docs/numbers.md). Topics that
exist keep their placement.
"""

import asyncio
import logging
import os
import sys

from shared.kafka.acls import all_acls
from shared.kafka.provisioning import TopicMismatch, provision, wait_for_cluster
from shared.kafka.security import admin_client_config


async def main() -> int:
    kafka = admin_client_config()  # KAFKA_BOOTSTRAP_SERVERS, KAFKA_ADMIN_PASSWORD, or the local defaults
    # While the brokers start, every refused connection is expected: wait_for_cluster retries them.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    await wait_for_cluster(kafka, brokers=3)
    leader = int(os.environ["KAFKA_TOPIC_LEADER"]) if os.environ.get("KAFKA_TOPIC_LEADER") else None
    try:
        report = await provision(kafka, leader=leader)
    except TopicMismatch as exc:
        print(f"topics: settings differ from shared/events/topics.py: {exc}", file=sys.stderr)
        return 1
    created = f"created {', '.join(report.created)}" if report.created else "all present"
    placed = "" if not report.created else " (leaders spread)" if leader is None else f" (led by broker {leader})"
    print(f"kafka: 3 brokers ready; topics {created}{placed}; {len(all_acls())} ACLs granted")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
