"""Mint a development bearer token: `python infra/scripts/dev_token.py SUBJECT ROLE [--exp SECONDS]`
(what `make token SUB=alice ROLE=customer` runs). It prints the token alone, so that
`TOKEN=$(make -s token SUB=alice ROLE=customer)` works.

The token is what an identity provider would issue: ES256-signed with `.run/keys/auth-signing.pem`
(infra/scripts/dev_keys.py makes it), with the issuer and audience the services expect by default,
the subject, the role (claim `role`: customer, support or admin) and an expiry. `mint_token` is the
one way tests, the benchmark and the demo get tokens too.

(Not named token.py: a script's directory comes first on sys.path, and the standard library has a
`token` module that tokenize, and so tracebacks, import.)
"""

import argparse
import time
import uuid
from pathlib import Path

import jwt
from shared.auth import Role
from shared.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
SIGNING_KEY = REPO / ".run/keys/auth-signing.pem"
# The services' defaults, so a minted token is one they accept without configuration.
ISSUER: str = ServiceSettings.model_fields["auth_issuer"].default
AUDIENCE: str = ServiceSettings.model_fields["auth_audience"].default
TTL_S = 3600


def mint_token(
    subject: str,
    role: str,
    *,
    ttl_s: float = TTL_S,
    key_file: Path = SIGNING_KEY,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    algorithm: str = "ES256",
) -> str:
    """A signed JWT for `subject` in `role`, valid for `ttl_s` seconds (negative: already expired)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "role": role,
        "iat": now,
        "exp": now + int(ttl_s),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key_file.read_bytes(), algorithm=algorithm)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print a development bearer token.")
    parser.add_argument("subject", help="who: a customer id (alice), or an operator's name")
    parser.add_argument("role", choices=[role.value for role in Role])
    parser.add_argument("--exp", type=int, default=TTL_S, help=f"seconds until it expires (default {TTL_S})")
    args = parser.parse_args()
    if not args.subject.strip():
        parser.error("the subject must not be blank")
    print(mint_token(args.subject, args.role, ttl_s=args.exp))


if __name__ == "__main__":
    main()
