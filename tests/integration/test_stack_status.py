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


def stack(*args: str, relay: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "RELAY"}
    if relay is not None:
        environment["RELAY"] = relay
    return subprocess.run(
        ["bash", "infra/scripts/stack.sh", *args],
        cwd=REPO,
        env={**environment, "REPO": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def running_relay() -> str:
    """The relay mode `make up` recorded (a stack started before the file existed is builtin)."""
    recorded = REPO / ".run/relay-mode"
    return recorded.read_text().strip() if recorded.exists() else "builtin"


def test_status_names_the_relay_the_stack_runs_with():
    result = stack("status")

    assert result.returncode == 0, result.stderr
    assert f"relay: {running_relay()}" in result.stdout


def test_a_relay_that_is_neither_builtin_nor_debezium_is_refused_before_anything_runs():
    result = stack("status", relay="kafka-connect")

    assert result.returncode == 2
    assert "RELAY must be builtin or debezium, not 'kafka-connect'" in result.stderr
    assert result.stdout == ""


def test_up_refuses_to_switch_the_relay_of_a_running_stack():
    """Switching skips the events unpublished at the switch: it goes through `make down`. The
    refusal comes first in `up`, before anything is started or stopped."""
    running = running_relay()
    other = {"builtin": "debezium", "debezium": "builtin"}[running]

    result = stack("up", relay=other)

    assert result.returncode == 1
    assert f"the stack runs with RELAY={running}; make down first to switch to RELAY={other}" in result.stderr
