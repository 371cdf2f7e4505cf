"""order-rebuild: fold the orders projection again, from the event store or from the order-events
topic, and report whether it equals the live projection (exit 0) or not (exit 1).

    order-rebuild --from store            compare only
    order-rebuild --from store --apply    also replace the differing rows, in one transaction
    order-rebuild --from topic            compare the orders whose whole history is on the topic
"""

import argparse
import asyncio
import sys

from shared.db import create_engine, create_session_factory
from shared.logging import configure_logging

from order_service.service_layer.rebuild import Report, rebuild_from_store, rebuild_from_topic
from order_service.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="order-rebuild", description="Rebuild the orders projection from events and compare it with the live one."
    )
    parser.add_argument(
        "--from", dest="source", choices=("store", "topic"), required=True, help="where the events come from"
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="replace the differing projection rows (only --from store: the store holds every event)",
    )
    parser.add_argument("--max-differences", type=int, default=20, help="how many differing orders to print")
    args = parser.parse_args(argv)
    if args.apply and args.source != "store":
        parser.error("--apply needs --from store: the topic keeps events for 7 days and may lag the store")
    return args


async def run(settings: Settings, source: str, *, apply: bool = False) -> Report:
    engine = create_engine(settings, role="rebuild")
    try:
        sessions = create_session_factory(engine)
        if source == "store":
            return await rebuild_from_store(sessions, apply=apply)
        return await rebuild_from_topic(sessions, settings.kafka_client_config())
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings()
    configure_logging(settings.service_name, "rebuild", level="WARNING", fmt="console")
    report = asyncio.run(run(settings, args.source, apply=args.apply))
    print(report.render(max_differences=args.max_differences))
    sys.exit(0 if report.ok else 1)
