"""The inventory's outbox relay: publishes its committed events to `inventory-events`."""

from shared.runtime import relay_main

from inventory_service.settings import Settings


def main() -> None:
    relay_main(Settings())
