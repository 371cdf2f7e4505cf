"""An event given to the wrong handler is refused for good (dead-lettered at once), as in every
service, before anything is read or written."""

import uuid

import pytest
from order_service.service_layer.handlers import on_payment_processed, on_stock_reserved
from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, PaymentFailed


@pytest.mark.parametrize("handler", [on_stock_reserved, on_payment_processed])
async def test_an_event_of_another_type_is_refused_for_good(handler):
    wrong = Envelope.new(PaymentFailed(order_id=uuid.uuid4(), amount=1000, currency="EUR", reason="card_declined"))

    with pytest.raises(NonRetryableError, match="PaymentFailed"):
        await handler(None, wrong)  # no session: the refusal comes before any I/O
