"""`make status` (stack.sh status) reports every part, even while some programs are stopped (the
scale-out ones are, unless `make scale-out` ran): each API's health and Prometheus's URL and health."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_status_prints_the_health_of_the_apis_and_of_prometheus_with_stopped_programs_around():
    result = subprocess.run(
        ["bash", "infra/scripts/stack.sh", "status"],
        cwd=REPO,
        env={**os.environ, "REPO": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert "STOPPED" in result.stdout, "expected a stopped program (scale-out) around"
    assert result.returncode == 0, result.stderr
    for name in ("order-api health", "payment-api health", "inventory-api health", "prometheus health"):
        assert name in result.stdout
    assert "http://127.0.0.1:9090" in result.stdout
