"""Payment tokens as the order service sends them: sealed to the payment service's development
public key (`.run/keys/payment-token.pub`, made by `make up`), which the payment service's
development private key opens. Tests that build an OrderCreated by hand seal its token here."""

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from order_service.settings import Settings as OrderSettings
from payment_service.settings import Settings as PaymentSettings
from shared.sealing import Opener, Sealer


@cache
def sealer() -> Sealer:
    return Sealer.from_file(OrderSettings().payment_token_public_key_file)


@cache
def opener() -> Opener:
    return Opener.from_file(PaymentSettings().payment_token_private_key_file)


def sealed(token: str) -> str:
    """`token` sealed for the payment service, as in an OrderCreated."""
    return sealer().seal(token)


def opener_for(handler: Callable[..., Any]) -> dict[str, Opener]:
    """The `opener=` keyword a payment handler takes when it reads tokens (as build_handlers binds it),
    for tests that call handlers one by one."""
    return {"opener": opener()} if "opener" in inspect.signature(handler).parameters else {}
