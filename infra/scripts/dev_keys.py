"""Create the development keys the stack needs, once: `python infra/scripts/dev_keys.py [DIR]`
(default `.run/keys`, never committed). A key that exists is kept, so tokens signed and payment
tokens sealed before a restart stay valid. `make up` runs it; compose runs it in its `keys` service.

- auth-signing.pem / auth-signing.pub.pem: the ES256 key pair that signs the development bearer
  tokens (`make token`); the services hold only the public half. A deployment points the services
  at its identity provider's JWKS instead and has no signing key at all.
- payment-token.key / payment-token.pub: the X25519 key pair of the payment service's sealed boxes
  (libsodium `crypto_box_seal`, raw 32 bytes each). The order service seals every payment token to
  the public half; only the payment service holds the private half. Losing it makes every sealed
  token unreadable: that is the point (crypto-shredding), see docs/security.md.

Private keys are written owner-read-only (0600).
"""

import os
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.public import PrivateKey

DEFAULT_DIR = Path(".run/keys")


def auth_signing_pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def payment_token_pair() -> tuple[bytes, bytes]:
    key = PrivateKey.generate()
    return bytes(key), bytes(key.public_key)


# name -> (private file, public file, generator)
PAIRS: dict[str, tuple[str, str, Callable[[], tuple[bytes, bytes]]]] = {
    "auth-signing": ("auth-signing.pem", "auth-signing.pub.pem", auth_signing_pair),
    "payment-token": ("payment-token.key", "payment-token.pub", payment_token_pair),
}


def ensure_keys(directory: Path) -> list[str]:
    """Create every missing pair in `directory`; the names of those created."""
    directory.mkdir(parents=True, exist_ok=True)
    created = []
    for name, (private_name, public_name, generate) in PAIRS.items():
        private_path, public_path = directory / private_name, directory / public_name
        if private_path.exists() and public_path.exists():
            continue
        private, public = generate()
        # Created 0600 from the start, so the private key is never readable by others, not even briefly.
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(private)
        public_path.write_bytes(public)
        created.append(name)
    return created


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    for name in ensure_keys(directory):
        print(f"keys: created {name} in {directory}")


if __name__ == "__main__":
    main()
