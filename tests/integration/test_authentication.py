"""Every API wants a bearer token, in process against the real Postgres: a missing, expired, wrongly
signed, unsigned, HMAC-signed, other-audience or other-issuer token is a 401 problem challenging
for a bearer token, on an operation of each service; health and metrics stay open; the OpenAPI
documents say so (the bearer scheme, and the operations that use it)."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dev_token import SIGNING_KEY, mint_token
from inventory_service.entrypoints.api import create_app as inventory_app
from inventory_service.settings import Settings as InventorySettings
from order_service.entrypoints.api import create_app as order_app
from order_service.settings import Settings as OrderSettings
from payment_service.entrypoints.api import create_app as payment_app
from payment_service.settings import Settings as PaymentSettings

pytestmark = pytest.mark.infra

# One operation of each service that needs a token, and the app that serves it.
PROTECTED = {
    "order": ("GET", "/orders"),
    "payment": ("GET", f"/payments/{uuid.uuid4()}"),
    "inventory": ("GET", "/products/SKU-1"),
}


@pytest.fixture(scope="module")
async def apps(migrate, in_process_api) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    for service in PROTECTED:
        migrate(service)
    async with (
        in_process_api(order_app(OrderSettings(db_pool_size=2))) as order,
        in_process_api(payment_app(PaymentSettings(db_pool_size=2))) as payment,
        in_process_api(inventory_app(InventorySettings(db_pool_size=2))) as inventory,
    ):
        yield {"order": order, "payment": payment, "inventory": inventory}


@pytest.fixture(scope="module")
def another_key(tmp_path_factory) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path_factory.mktemp("keys") / "not-the-issuer.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def forged(alg: str) -> str:
    """A token with valid claims, unsigned (`none`) or HMAC-signed with the public key as the secret."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": "ecommerce-dev", "aud": "ecommerce", "sub": "mallory", "role": "admin", "exp": now + 600}
    signing_input = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}"
    if alg == "none":
        return f"{signing_input}."
    public = SIGNING_KEY.with_name("auth-signing.pub.pem").read_bytes()
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def bad_tokens(another_key: Path) -> dict[str, str | None]:
    return {
        "missing": None,
        "expired": mint_token("alice", "admin", ttl_s=-120),
        "signed by another key": mint_token("alice", "admin", key_file=another_key),
        "another audience": mint_token("alice", "admin", audience="another-system"),
        "another issuer": mint_token("alice", "admin", issuer="someone-else"),
        "unsigned (alg none)": forged("none"),
        "HS256 keyed with the public key": forged("HS256"),
        "not a JWT": "not-a-jwt",
    }


@pytest.mark.parametrize("service", PROTECTED)
async def test_a_missing_or_bad_token_is_a_401_problem_with_www_authenticate(apps, another_key, service):
    method, path = PROTECTED[service]

    for kind, token in bad_tokens(another_key).items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        response = await apps[service].request(method, path, headers=headers)

        assert response.status_code == 401, (kind, response.text)
        assert response.headers["content-type"] == "application/problem+json", kind
        challenge = response.headers["www-authenticate"]
        expected = "Bearer" if token is None else 'Bearer error="invalid_token"'  # RFC 6750: no error if none sent
        assert challenge.split(",")[0] == expected, (kind, challenge)


@pytest.mark.parametrize("service", PROTECTED)
async def test_health_and_metrics_need_no_token(apps, service):
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert (await apps[service].get(path)).status_code in (200, 503), path  # 503: a dependency is away


@pytest.mark.parametrize("service", PROTECTED)
async def test_the_openapi_document_states_the_bearer_scheme_on_every_operation_but_health(apps, service):
    document = (await apps[service].get("/openapi.json")).json()

    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "`make token SUB=... ROLE=...`",
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured != path.startswith("/health"), (method, path)
            if secured:
                assert "401" in operation["responses"], (method, path)
