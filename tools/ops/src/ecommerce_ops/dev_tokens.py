"""Development bearer tokens: what an identity provider would issue, signed with the local key pair.

The one minter: `make token` (infra/scripts/dev_token.py), the demo, the benchmark, the tests and this
CLI's default token all call `mint_token`. The token is ES256-signed with `.run/keys/auth-signing.pem`
(infra/scripts/dev_keys.py makes it), with the issuer and audience the services expect by default,
the subject, the role (claim `role`: customer, support or admin) and an expiry.
"""

import time
import uuid
from pathlib import Path

import jwt
from shared.settings import ServiceSettings

# The package lives at tools/ops/src/ecommerce_ops in the repository (a uv workspace member,
# installed editable), so the repository's development keys are found from here.
REPO = Path(__file__).resolve().parents[4]
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
