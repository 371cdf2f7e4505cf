"""End-to-end tests: the whole system runs (`make up`), the tests are its customers over HTTP."""

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .storefront import Storefront

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)
    # The fault matrix last: the tests after it would otherwise run against a system still catching up.
    items.sort(key=lambda item: item.get_closest_marker("fault_matrix") is not None)


@pytest.fixture
async def shop() -> AsyncIterator[Storefront]:
    storefront = Storefront.connect()
    try:
        yield storefront
    finally:
        await storefront.close()


def supervisorctl(*args: str) -> str:
    """Operate the local process supervisor, as an operator would during an incident."""
    result = subprocess.run(
        [str(REPO / ".venv/bin/supervisorctl"), "-c", str(REPO / "infra/supervisord.conf"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "REPO": str(REPO)},
        check=False,
    )
    return result.stdout + result.stderr
