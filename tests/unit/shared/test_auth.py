"""Bearer token verification (shared.auth) without Postgres or Kafka: tokens minted the way `make
token` mints them (infra/scripts/dev_token.py), with keys made for the test, and a tiny app whose
routes state their callers."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dev_token import mint_token
from fastapi import APIRouter, Depends, FastAPI
from shared.auth import Caller, Principal, Role, TokenVerifier, Unauthenticated, install_auth_problems, requires
from shared.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

ISSUER, AUDIENCE = "test-issuer", "test-api"


def write_key_pair(directory: Path, name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    private = directory / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / f"{name}.pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "signing": write_key_pair(directory, "signing", ec.generate_private_key(ec.SECP256R1())),
        "other": write_key_pair(directory, "other", ec.generate_private_key(ec.SECP256R1())),
    }


@pytest.fixture(scope="module")
def verifier(keys) -> TokenVerifier:
    public = keys["signing"].with_name("signing.pub.pem").read_bytes()
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=public)


@pytest.fixture(scope="module")
def mint(keys):
    def build(subject: str = "alice", role: str = "customer", **options) -> str:
        options = {"key_file": keys["signing"], "issuer": ISSUER, "audience": AUDIENCE} | options
        return mint_token(subject, role, **options)

    return build


def unsigned(claims: dict, header: dict) -> tuple[str, str]:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return part(header), part(claims)


def claims(**changes) -> dict:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "role": "customer", "exp": now + 600} | changes


def test_a_token_signed_with_the_key_names_its_subject_and_role(verifier, mint):
    assert verifier.verify(mint("alice", "customer")) == Principal("alice", Role.CUSTOMER)
    assert verifier.verify(mint("sam", "support")).role is Role.SUPPORT


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ttl_s": -120}, "expired"),  # past the 30 s leeway
        ({"audience": "another-api"}, "not meant for this API"),
        ({"issuer": "someone-else"}, "not issued by a trusted issuer"),
        ({"role": "superuser"}, "'role' claim must be one of"),
    ],
)
def test_a_token_is_refused_saying_why(verifier, mint, change, reason):
    role = change.pop("role", "customer")
    with pytest.raises(Unauthenticated, match=reason):
        verifier.verify(mint("alice", role, **change))


@pytest.mark.parametrize("role", [["admin"], {"admin": True}, 1, None])
def test_a_role_claim_that_is_not_one_role_name_is_refused(verifier, keys, role):
    token = jwt.encode(claims(role=role), keys["signing"].read_bytes(), algorithm="ES256")

    with pytest.raises(Unauthenticated, match="'role' claim must be one of"):
        verifier.verify(token)


def test_a_token_signed_by_another_key_is_refused(verifier, mint, keys):
    with pytest.raises(Unauthenticated, match="signature does not verify"):
        verifier.verify(mint(key_file=keys["other"]))


def test_an_unsigned_token_alg_none_is_refused(verifier):
    header, payload = unsigned(claims(), {"alg": "none", "typ": "JWT"})

    with pytest.raises(Unauthenticated, match="algorithm is not accepted"):
        verifier.verify(f"{header}.{payload}.")


def test_an_hs256_token_keyed_with_the_public_key_is_refused(verifier, keys):
    # The classic confusion attack: the public key (which anyone may hold) used as an HMAC secret.
    public = keys["signing"].with_name("signing.pub.pem").read_bytes()
    header, payload = unsigned(claims(), {"alg": "HS256", "typ": "JWT"})
    signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    with pytest.raises(Unauthenticated, match="algorithm is not accepted"):
        verifier.verify(token)


@pytest.mark.parametrize("missing", ["exp", "sub", "aud", "iss"])
def test_a_token_without_a_required_claim_is_refused(verifier, keys, missing):
    token = jwt.encode(
        {k: v for k, v in claims().items() if k != missing}, keys["signing"].read_bytes(), algorithm="ES256"
    )

    with pytest.raises(Unauthenticated, match=f"no '{missing}' claim"):
        verifier.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x"])
def test_a_token_that_is_not_a_jwt_is_refused(verifier, garbage):
    with pytest.raises(Unauthenticated, match="not a valid JWT"):
        verifier.verify(garbage)


def test_a_verifier_takes_one_key_source_and_only_an_asymmetric_key(keys):
    with pytest.raises(ValueError, match="exactly one key source"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE)
    rsa_public = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=rsa_public)  # RS256 for an RSA key


def test_a_remembered_token_is_still_refused_once_it_expires(keys, mint):
    public = keys["signing"].with_name("signing.pub.pem").read_bytes()
    strict = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_pem=public, leeway_s=0)
    token = mint(ttl_s=1)
    assert strict.verify(token).subject == "alice"  # verified, and remembered

    deadline = time.monotonic() + 5
    while True:
        try:
            strict.verify(token)
        except Unauthenticated as refused:
            assert "expired" in str(refused)
            break
        assert time.monotonic() < deadline, "a remembered token outlived its exp"
        time.sleep(0.1)


def test_keys_come_from_a_jwks_url_picked_by_the_token_s_kid(keys):
    signing = serialization.load_pem_private_key(keys["signing"].read_bytes(), password=None)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(signing.public_key())) | {"kid": "k1", "alg": "ES256"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
        verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=url)
        token = jwt.encode(claims(), keys["signing"].read_bytes(), algorithm="ES256", headers={"kid": "k1"})
        unknown_kid = jwt.encode(claims(), keys["signing"].read_bytes(), algorithm="ES256", headers={"kid": "k9"})

        assert verifier.verify(token) == Principal("alice", Role.CUSTOMER)
        with pytest.raises(Unauthenticated):
            verifier.verify(unknown_kid)
    finally:
        server.shutdown()


# -- the HTTP answers ------------------------------------------------------------------------------


@pytest.fixture
async def client(verifier):
    router = APIRouter()

    @router.get("/mine")
    async def mine(caller: Caller) -> dict[str, str]:
        return {"subject": caller.subject}

    @router.put("/catalog", dependencies=[Depends(requires(Role.ADMIN))])
    async def write() -> dict[str, str]:
        return {"written": "yes"}

    app = FastAPI()
    app.include_router(router)
    install_problem_handlers(app, {})
    install_auth_problems(app)
    app.state.token_verifier = verifier
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_token_is_a_401_problem_challenging_for_a_bearer_token(client):
    response = await client.get("/mine")

    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"] == "urn:problem:unauthenticated"


async def test_a_refused_token_is_a_401_with_invalid_token_and_why(client, mint):
    response = await client.get("/mine", headers=bearer(mint(ttl_s=-120)))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "expired" in response.json()["detail"]


async def test_basic_credentials_are_no_bearer_token(client):
    response = await client.get("/mine", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})

    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_reaches_the_route_as_its_principal(client, mint):
    assert (await client.get("/mine", headers=bearer(mint("alice")))).json() == {"subject": "alice"}


async def test_a_role_the_route_does_not_admit_is_a_403_problem(client, mint):
    refused = await client.put("/catalog", headers=bearer(mint("alice", "customer")))
    admitted = await client.put("/catalog", headers=bearer(mint("ada", "admin")))

    assert refused.status_code == 403 and refused.json()["type"] == "urn:problem:forbidden"
    assert "needs admin" in refused.json()["detail"]
    assert admitted.status_code == 200
