"""The order relay: publishes the `orders` outbox to `order-events`."""

from shared.runtime import relay_main

from order_service.settings import Settings


def main() -> None:
    relay_main(Settings())
