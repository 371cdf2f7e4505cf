"""Sealed boxes (shared/sealing.py): what the order service seals only the payment service opens."""

import base64

import pytest
from nacl.public import PrivateKey
from shared.sealing import CannotOpen, Opener, Sealer


def pair() -> tuple[Sealer, Opener]:
    key = PrivateKey.generate()
    return Sealer(bytes(key.public_key)), Opener(bytes(key))


def test_a_sealed_secret_opens_with_the_private_key_to_the_same_text():
    sealer, opener = pair()
    assert opener.open(sealer.seal("tok_visa")) == "tok_visa"
    assert opener.open(sealer.seal("tok_ünïcode")) == "tok_ünïcode"


def test_a_sealed_secret_is_url_safe_base64_and_does_not_contain_the_secret():
    sealer, _ = pair()
    sealed = sealer.seal("tok_visa")
    assert "tok_visa" not in sealed
    assert set(sealed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert len(base64.urlsafe_b64decode(sealed)) == len("tok_visa") + 48


def test_sealing_twice_gives_two_different_boxes():
    sealer, opener = pair()
    first, second = sealer.seal("tok_visa"), sealer.seal("tok_visa")
    assert first != second
    assert opener.open(first) == opener.open(second) == "tok_visa"


def test_a_secret_sealed_to_another_key_is_refused():
    sealer, _ = pair()
    _, other_opener = pair()
    with pytest.raises(CannotOpen, match="not sealed to this key"):
        other_opener.open(sealer.seal("tok_visa"))
    assert not other_opener.can_open(sealer.seal("tok_visa"))


@pytest.mark.parametrize(
    "garbage",
    ["", "tok_visa", "not base64 at all!", base64.urlsafe_b64encode(b"x" * 80).decode(), "tök"],
)
def test_garbage_is_refused_without_being_repeated(garbage):
    _, opener = pair()
    with pytest.raises(CannotOpen) as refused:
        opener.open(garbage)
    assert not garbage or garbage not in str(refused.value)


def test_an_altered_box_is_refused():
    sealer, opener = pair()
    box = bytearray(base64.urlsafe_b64decode(sealer.seal("tok_visa")))
    box[-1] ^= 1
    with pytest.raises(CannotOpen):
        opener.open(base64.urlsafe_b64encode(bytes(box)).decode())


def test_a_key_that_is_not_32_raw_bytes_is_refused():
    with pytest.raises(ValueError, match="32 raw bytes"):
        Sealer(b"-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ValueError, match="32 raw bytes"):
        Opener(b"short")


def test_the_development_key_files_are_read_as_raw_bytes(tmp_path):
    key = PrivateKey.generate()
    (tmp_path / "payment-token.pub").write_bytes(bytes(key.public_key))
    (tmp_path / "payment-token.key").write_bytes(bytes(key))
    sealer, opener = Sealer.from_file(tmp_path / "payment-token.pub"), Opener.from_file(tmp_path / "payment-token.key")
    assert opener.open(sealer.seal("tok_visa")) == "tok_visa"
    assert opener.public_key == bytes(key.public_key)
