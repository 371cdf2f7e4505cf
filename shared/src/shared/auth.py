"""Who is calling: bearer JWTs verified with PyJWT, and the FastAPI dependencies a route states its
callers with (`Caller`, `requires(...)`).

A token is accepted when its signature verifies with an asymmetric algorithm (ES256 or RS256: never
an HMAC secret, never `none`), `exp` is in the future, `iss` and `aud` are this system's, and it
names a subject (`sub`) and one known role in the `role` claim. The public key comes from the
identity provider's JWKS (`auth_jwks_url`) or, for the local stack, from a PEM file
(`auth_public_key_file`, made by infra/scripts/dev_keys.py; `make token` signs with its private half).

Answers, as RFC 9457 problems (shared.problems):
- 401 with `WWW-Authenticate: Bearer` when no bearer token is sent, and with
  `error="invalid_token"` (RFC 6750) when the token is refused: bad signature, expired, another
  issuer or audience, malformed, no subject or an unknown role;
- 403 when the caller's role may not do this (`error="insufficient_scope"`).
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.problems import problem_response

# Clock skew tolerated on exp/nbf/iat between the identity provider and this host.
LEEWAY_S = 30
# Tokens verified lately, kept until they expire: an ES256 verification costs about 260 us of CPU
# (measured), a look-up nothing, and a client sends the same token with every request.
VERIFIED_CACHE_SIZE = 10_000
# Only asymmetric signatures: whoever verifies can never sign.
ASYMMETRIC = ("ES256", "RS256")
ROLE_CLAIM = "role"


class Role(StrEnum):
    CUSTOMER = "customer"  # places orders as itself; sees only its own orders and payments
    SUPPORT = "support"  # reads any order, payment and reservation; changes nothing
    ADMIN = "admin"  # writes the catalog, restocks; reads like support


@dataclass(frozen=True)
class Principal:
    """The verified caller: the token's subject and role."""

    subject: str
    role: Role


class Unauthenticated(Exception):
    """No usable token. `reason` is None when none was sent (RFC 6750: then no error code)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "this operation needs a bearer token (Authorization: Bearer <JWT>)")
        self.reason = reason


class Forbidden(Exception):
    """A verified caller whose role, or whose relation to the resource, does not allow the operation."""


class TokenVerifier:
    """Verifies a bearer token against one key source: a JWKS URL (keys fetched and cached by
    PyJWKClient, chosen by the token's `kid`) or one PEM public key. A verified token is remembered
    until it expires (at most VERIFIED_CACHE_SIZE, the oldest forgotten first); a refused one is not.

    PyJWKClient fetches with blocking I/O: the first token, and one signed with a new `kid`, wait for
    the identity provider's JWKS on the event loop (the key set is cached in between)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        public_key_pem: bytes | None = None,
        jwks_url: str | None = None,
        leeway_s: float = LEEWAY_S,
    ) -> None:
        if (public_key_pem is None) == (jwks_url is None):
            raise ValueError("give exactly one key source: a JWKS URL or a PEM public key")
        self._issuer, self._audience, self._leeway = issuer, audience, leeway_s
        self._verified: dict[str, tuple[Principal, float]] = {}  # token -> (principal, its exp)
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._key: Any = None
        self._algorithms: list[str] = list(ASYMMETRIC)
        if public_key_pem is not None:
            self._key = load_pem_public_key(public_key_pem)
            # The key fixes the algorithm: an EC key verifies only ES256, an RSA key only RS256.
            if isinstance(self._key, ec.EllipticCurvePublicKey):
                self._algorithms = ["ES256"]
            elif isinstance(self._key, rsa.RSAPublicKey):
                self._algorithms = ["RS256"]
            else:
                raise ValueError("the auth public key must be an EC P-256 or an RSA key")

    def verify(self, token: str) -> Principal:
        """The token's principal; raises Unauthenticated saying why it is refused."""
        known = self._verified.get(token)
        if known is not None and time.time() <= known[1] + self._leeway:
            return known[0]
        principal, expires_at = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest (dicts keep insertion order)
        self._verified[token] = (principal, expires_at)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._key
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is not meant for this API (aud)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token was not issued by a trusted issuer (iss)") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated(f"the token's algorithm is not accepted (only {', '.join(ASYMMETRIC)})") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no {exc.claim!r} claim") from None
        except (jwt.PyJWTError, ValueError):
            raise Unauthenticated("the token is not a valid JWT") from None
        subject, role = claims.get("sub"), claims.get(ROLE_CLAIM)
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated("the token's subject (sub) is empty")
        if not isinstance(role, str) or role not in set(Role):
            raise Unauthenticated(f"the token's {ROLE_CLAIM!r} claim must be one of {', '.join(Role)}")
        return Principal(subject, Role(role)), float(claims["exp"])


def verifier_from(*, issuer: str, audience: str, jwks_url: str | None, public_key_file: Path | None) -> TokenVerifier:
    """The verifier the settings describe: the JWKS URL when there is one, else the PEM file."""
    if jwks_url:
        return TokenVerifier(issuer=issuer, audience=audience, jwks_url=jwks_url)
    if public_key_file is None:
        raise ValueError("set auth_jwks_url or auth_public_key_file")
    try:
        pem = public_key_file.read_bytes()
    except OSError as exc:
        raise RuntimeError(
            f"cannot read the auth public key {public_key_file} ({exc.strerror}); "
            "run `python infra/scripts/dev_keys.py` (make up does) or set auth_jwks_url"
        ) from None
    return TokenVerifier(issuer=issuer, audience=audience, public_key_pem=pem)


# -- FastAPI -------------------------------------------------------------------------------------

# auto_error=False: a missing token is answered by this module as a problem, not by FastAPI's own
# 403. The scheme puts `bearerAuth` in the OpenAPI document (the docs page's Authorize button).
_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearerAuth", bearerFormat="JWT", description="`make token SUB=... ROLE=...`"
)


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller of any authenticated operation."""
    if credentials is None:
        raise Unauthenticated()
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)


Caller = Annotated[Principal, Depends(authenticated)]


def requires(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only callers in one of `roles` (403 for the others)."""

    async def role_in(caller: Caller) -> Principal:
        if caller.role not in roles:
            raise Forbidden(f"the {caller.role} role may not do this; it needs {' or '.join(roles)}")
        return caller

    return role_in


def install_auth_problems(app: FastAPI) -> None:
    app.add_exception_handler(Unauthenticated, _unauthenticated)  # type: ignore[arg-type]  # see problems.py
    app.add_exception_handler(Forbidden, _forbidden)


async def _unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
    challenge = "Bearer" if exc.reason is None else f'Bearer error="invalid_token", error_description="{exc.reason}"'
    return problem_response(
        request, 401, str(exc), slug="unauthenticated", title="Unauthenticated", headers={"WWW-Authenticate": challenge}
    )


async def _forbidden(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request,
        403,
        str(exc),
        slug="forbidden",
        title="Forbidden",
        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
    )


def auth_responses(forbidden: str | None = None) -> dict[int, str]:
    """The 401 (and, when the operation admits only some callers, 403) an operation documents;
    pass into `problem_responses`."""
    responses = {401: "no bearer token, or one refused (see `WWW-Authenticate`)"}
    if forbidden:
        responses[403] = forbidden
    return responses
