"""The HTTP API's response bodies (the public contract; the table may differ, and the payment token
never leaves the service)."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field


class Problem(BaseModel):
    detail: str = Field(description="What is wrong with the request")


class PaymentOut(BaseModel):
    order_id: UUID
    status: Literal["AWAITING_DETAILS", "CHARGED", "DECLINED", "REFUNDED", "VOIDED"] = Field(
        description="AWAITING_DETAILS until the token and the amount are known; VOIDED when the order was "
        "cancelled before any charge (it is never charged then)"
    )
    amount: int | None = Field(description="Minor units of `currency`; null until inventory priced the order")
    currency: str | None
    payment_id: UUID | None = Field(description="The gateway's id of the charge")
    failure_reason: str | None = Field(description="Why the gateway declined the charge")
    charged_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime
