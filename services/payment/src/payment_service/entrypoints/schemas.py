"""The HTTP API's response bodies (the public contract; the table may differ, and the payment token
never leaves the service)."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field


class PaymentOut(BaseModel):
    order_id: UUID
    status: Literal[
        "AWAITING_DETAILS", "CHARGING", "CHARGED", "DECLINED", "REFUNDING", "REFUNDED", "REFUND_REFUSED", "VOIDED"
    ] = Field(
        description="AWAITING_DETAILS until the token and the amount are known; CHARGING while the charge is "
        "decided and the gateway's answer awaited (REFUNDING likewise for a refund); VOIDED when the order was "
        "cancelled before any charge (it is never charged then); REFUND_REFUSED when the gateway would not "
        "refund (a human settles it)"
    )
    amount: int | None = Field(description="Minor units of `currency`; null until inventory priced the order")
    currency: str | None
    payment_id: UUID | None = Field(description="The gateway's id of the charge")
    failure_reason: str | None = Field(description="Why the gateway declined the charge, or refused the refund")
    charged_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime
