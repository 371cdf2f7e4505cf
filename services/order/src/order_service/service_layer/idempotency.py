"""What makes two order requests "the same" for an Idempotency-Key."""

import hashlib
import json

from .commands import PlaceOrder


def request_hash(command: PlaceOrder) -> str:
    """SHA-256 of the request's canonical JSON. Lines are sorted by SKU (a SKU appears at most once,
    so their order means nothing); the key itself is not part of the request."""
    canonical = {
        "customer_id": command.customer_id,
        "items": sorted((line.sku, line.quantity) for line in command.items),  # by SKU: SKUs are unique
        "payment_token": command.payment_token,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
