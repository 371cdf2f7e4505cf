"""Fuzzing the three HTTP APIs from their own OpenAPI documents (schemathesis): each app runs in
process with its lifespan, so requests reach the real Postgres and Kafka of the local stack.

Requests are generated in schemathesis' examples, coverage and fuzzing phases, valid and invalid
ones (NUL characters included). Every answer must be no 5xx, with a status code the operation
documents, the content type and body the document gives for that status and its documented headers;
a method the path does not have must be a 405 whose Allow lists the methods it has. Generation is
derandomized (the same requests every run) and bounded (MAX_EXAMPLES per operation and phase): about
1,000 requests, 40 s on the reference machine.

Data written stays apart from other tests': products are created under FUZZ- SKUs only (the
document allows any SKU; the test narrows it so as not to reprice another test's product).
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from dev_token import mint_token
from hypothesis import HealthCheck, settings
from inventory_service.entrypoints.api import create_app as inventory_app
from inventory_service.settings import Settings as InventorySettings
from order_service.entrypoints.api import create_app as order_app
from order_service.settings import Settings as OrderSettings
from payment_service.entrypoints.api import create_app as payment_app
from payment_service.settings import Settings as PaymentSettings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    missing_required_header,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.python.asgi import shutdown_lifespans

pytestmark = pytest.mark.infra

MAX_EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,  # a method the path does not have is a 405...
    allow_header_conformance,  # ...whose Allow lists the methods it has
    missing_required_header,
]
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same requests every run: a failure here is reproducible
    database=None,  # no example database in the work tree
    deadline=None,  # a request to the real Postgres may take longer than Hypothesis's 200 ms
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)

requests_sent: Counter[str] = Counter()


def in_process(app: Any) -> Any:
    """The app's document, as it serves it at /openapi.json, bound to the app itself: schemathesis
    runs the app's lifespan on the first request and keeps it running until `shutdown_lifespans`.
    (Built at import without connecting anywhere; `schemathesis.pytest.from_fixture` would defer
    even that, but does not run under pytest 9.)"""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    return schema


order_api = in_process(order_app(OrderSettings(db_pool_size=2)))
payment_api = in_process(payment_app(PaymentSettings(db_pool_size=2)))
inventory_api = in_process(inventory_app(InventorySettings(db_pool_size=2)))

# Each API is called by a role that may use all its operations (the 401s and 403s have their own tests).
TOKENS = {
    service: {"Authorization": f"Bearer {mint_token(subject, role)}"}
    for service, subject, role in [
        ("order", "fuzz-customer", "customer"),
        ("payment", "fuzz-support", "support"),
        ("inventory", "fuzz-admin", "admin"),
    ]
}


@pytest.fixture(scope="module", autouse=True)
def stop_apps_and_report(migrate) -> Iterator[None]:
    for service in ("order", "payment", "inventory"):
        migrate(service)
    yield
    shutdown_lifespans()
    print(f"\nAPI fuzz: requests per service {dict(requests_sent)}")


@order_api.parametrize()
@FUZZ
def test_the_order_api_answers_every_request_as_its_document_says(case):
    requests_sent["order"] += 1
    case.call_and_validate(headers=TOKENS["order"], checks=CHECKS)


@payment_api.parametrize()
@FUZZ
def test_the_payment_api_answers_every_request_as_its_document_says(case):
    requests_sent["payment"] += 1
    case.call_and_validate(headers=TOKENS["payment"], checks=CHECKS)


@inventory_api.parametrize()
@FUZZ
def test_the_inventory_api_answers_every_request_as_its_document_says(case):
    requests_sent["inventory"] += 1
    if "sku" in (case.path_parameters or {}):
        case.path_parameters["sku"] = f"FUZZ-{case.path_parameters['sku']}"[:64]
    case.call_and_validate(headers=TOKENS["inventory"], checks=CHECKS)
