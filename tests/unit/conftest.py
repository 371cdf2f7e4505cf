"""Unit tests need no `make up`: an app that reads a key file when it is made (the order API reads
the payment service's public key) gets a throwaway key when the development keys are not there."""

import os
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from order_service.settings import Settings as OrderSettings


@pytest.fixture(scope="session", autouse=True)
def _payment_token_public_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    if OrderSettings().payment_token_public_key_file.exists():
        return  # `make up` made the development keys: the tests read what the services read
    public = tmp_path_factory.mktemp("keys") / "payment-token.pub"
    public.write_bytes(bytes(PrivateKey.generate().public_key))
    # For the whole session: nothing after the unit tests needs the missing file either.
    os.environ["ORDER_PAYMENT_TOKEN_PUBLIC_KEY_FILE"] = str(Path(public))
