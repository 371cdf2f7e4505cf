"""Wait for the Kafka cluster, then create or check the event topics (idempotent)."""

import asyncio
import logging
import os
import sys

from shared.kafka.provisioning import TopicMismatch, ensure_topics, wait_for_cluster

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096")


async def main() -> int:
    # While the brokers start, every refused connection is expected: wait_for_cluster retries them.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    await wait_for_cluster(BOOTSTRAP, brokers=3)
    try:
        report = await ensure_topics(BOOTSTRAP)
    except TopicMismatch as exc:
        print(f"topics: settings differ from shared/events/topics.py: {exc}", file=sys.stderr)
        return 1
    created = f"created {', '.join(report.created)}" if report.created else "all present"
    print(f"kafka: 3 brokers ready; topics {created}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
