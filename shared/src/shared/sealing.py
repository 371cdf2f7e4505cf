"""Sealed boxes: a secret sealed to a service's public key, which only that service's private key
opens (libsodium's `crypto_box_seal` through PyNaCl: an ephemeral X25519 key per box, XSalsa20-
Poly1305, so a box is randomized and authenticated, and its sender cannot open it either).

The order service seals every payment token to the payment service's public key; the payment
service opens it just before the charge. A sealed value travels as text: the box in url-safe base64
(RFC 4648 section 5, `-` and `_`, with `=` padding), 48 bytes longer than the secret before encoding.

Keys are raw 32-byte files (`infra/scripts/dev_keys.py` makes the development pair). Nothing here
logs, and no error message carries the sealed value or what it holds.
"""

import base64
import binascii
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

KEY_BYTES = 32


class CannotOpen(ValueError):
    """A sealed value that this private key cannot open: sealed to another key, altered, or not a
    sealed box at all. The message says which kind of failure, never the value."""


class Sealer:
    """Seals secrets to one public key."""

    def __init__(self, public_key: bytes) -> None:
        self._box = SealedBox(PublicKey(_key_bytes(public_key)))

    @classmethod
    def from_file(cls, path: Path) -> "Sealer":
        return cls(path.read_bytes())

    def seal(self, secret: str) -> str:
        return base64.urlsafe_b64encode(self._box.encrypt(secret.encode())).decode("ascii")


class Opener:
    """Opens what was sealed to its private key's public half."""

    def __init__(self, private_key: bytes) -> None:
        key = PrivateKey(_key_bytes(private_key))
        self._box = SealedBox(key)
        self.public_key = bytes(key.public_key)

    @classmethod
    def from_file(cls, path: Path) -> "Opener":
        return cls(path.read_bytes())

    def open(self, sealed: str) -> str:
        """The secret. Raises CannotOpen."""
        try:
            box = base64.b64decode(sealed.encode("ascii"), altchars=b"-_", validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise CannotOpen("not url-safe base64") from None
        try:
            return self._box.decrypt(box).decode()
        except CryptoError:
            # Wrong key, altered or truncated box: libsodium cannot tell them apart, on purpose.
            raise CannotOpen("not sealed to this key, or altered") from None
        except UnicodeDecodeError:
            raise CannotOpen("opened, but not UTF-8 text") from None

    def can_open(self, sealed: str) -> bool:
        """Whether `open` would succeed, without handing the secret to the caller."""
        try:
            self.open(sealed)
        except CannotOpen:
            return False
        return True


def _key_bytes(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise ValueError(f"a sealing key is {KEY_BYTES} raw bytes, got {len(key)}")
    return key
