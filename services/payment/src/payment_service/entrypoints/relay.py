"""The payment service's outbox relay: publishes its committed events to `payment-events`."""

from shared.runtime import relay_main

from payment_service.settings import Settings


def main() -> None:
    relay_main(Settings())
