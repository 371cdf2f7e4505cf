from order_service.service_layer.commands import Line, PlaceOrder
from order_service.service_layer.idempotency import request_hash


def order(
    *lines: tuple[str, int], customer: str = "c-1", token: str = "tok_visa", key: str | None = None
) -> PlaceOrder:
    return PlaceOrder(customer, tuple(Line(sku, quantity) for sku, quantity in lines), token, key)


def test_the_same_request_has_the_same_hash_whatever_its_key():
    assert request_hash(order(("A", 1), key="k1")) == request_hash(order(("A", 1), key="k2"))


def test_the_order_of_the_lines_does_not_make_another_request():
    assert request_hash(order(("A", 1), ("B", 2))) == request_hash(order(("B", 2), ("A", 1)))


def test_any_other_quantity_sku_or_customer_makes_another_request():
    base = request_hash(order(("A", 1)))
    assert request_hash(order(("A", 2))) != base
    assert request_hash(order(("B", 1))) != base
    assert request_hash(order(("A", 1), ("B", 1))) != base
    assert request_hash(order(("A", 1), customer="c-2")) != base


def test_the_payment_token_is_not_part_of_the_hash_so_no_derivative_of_it_is_kept():
    # A low-entropy token would be found again from a hash that covered it (docs/security.md).
    assert request_hash(order(("A", 1), token="tok_chargeDeclined")) == request_hash(order(("A", 1)))


def test_a_hash_cannot_be_forged_by_moving_text_between_fields():
    assert request_hash(order(("A", 1), customer="c1")) != request_hash(order(("A", 11), customer="c"))
