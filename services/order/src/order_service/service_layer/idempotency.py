"""What makes two order requests "the same" for an Idempotency-Key."""

import hashlib
import json

from .commands import PlaceOrder


def request_hash(command: PlaceOrder) -> str:
    """SHA-256 of the request's canonical JSON. Lines are sorted by SKU (a SKU appears at most once,
    so their order means nothing); the key itself is not part of the request.

    The payment token is left out. Its hash would be a derivative of the token kept in
    `idempotency_keys`, and a low-entropy token (a test token, a card number) is found again from its
    hash by trying them all; the sealed token cannot stand in, as every seal differs. Leaving it out
    is safe: a key reused by the same customer for the same lines with another token returns the
    order the first request created (charged, if at all, with the first token), never a second
    order or a second charge (docs/security.md)."""
    canonical = {
        "customer_id": command.customer_id,
        "items": sorted((line.sku, line.quantity) for line in command.items),  # by SKU: SKUs are unique
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
