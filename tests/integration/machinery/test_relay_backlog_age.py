"""outbox_oldest_unpublished_age_seconds: every relay of a service reports how long the next row to
publish has waited, whether it publishes or not; a relay that cannot reach Kafka never publishes,
and that is when the age must show (docs/architecture.md, "Metrics")."""

import pytest
from machinery_support import alert, unique_keys, wait_until
from prometheus_client import REGISTRY
from shared.outbox.relay import OutboxRelay

pytestmark = [pytest.mark.infra, pytest.mark.timeout(60)]


def age_of(service: str) -> float | None:
    return REGISTRY.get_sample_value("outbox_oldest_unpublished_age_seconds", {"service": service})


async def test_a_relay_that_cannot_reach_kafka_still_reports_the_age_of_the_oldest_unpublished_row(
    db, make_settings, background
):
    (sku,) = unique_keys(1)
    await db.write_events(alert(sku))
    await db.execute("UPDATE outbox SET created_at = now() - interval '30 seconds'")
    settings = make_settings(kafka_bootstrap_servers="127.0.0.1:1")  # nothing listens there
    relay = OutboxRelay(settings, db.dsn, backlog_age_interval_s=0.1)
    running = background.start(relay.run)

    await wait_until(lambda: (age_of(settings.service_name) or 0) >= 30, timeout=20, what="the age is reported")
    await db.execute("UPDATE outbox SET published_at = now()")
    await wait_until(lambda: age_of(settings.service_name) == 0, timeout=20, what="no unpublished row: age 0")

    assert relay.published == 0
    running.check()


async def test_a_publishing_relay_reports_zero_once_its_backlog_is_published(db, make_settings, background):
    await db.write_events(*(alert(sku) for sku in unique_keys(3)))
    await db.execute("UPDATE outbox SET created_at = now() - interval '10 seconds'")
    settings = make_settings()
    relay = OutboxRelay(settings, db.dsn, backlog_age_interval_s=0.1)
    running = background.start(relay.run)

    await wait_until(lambda: relay.published == 3, timeout=30, what="the backlog is published")
    await wait_until(lambda: age_of(settings.service_name) == 0, timeout=20, what="the age falls to 0")
    running.check()
