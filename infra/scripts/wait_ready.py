"""Wait until every service's /health/ready answers 200, or with --prometheus until Prometheus has
every target of the always-on jobs up and every alert of infra/monitoring/rules loaded; with
--report, print each one's health once."""

import os
import sys
import time
from pathlib import Path

import httpx
import yaml

APIS = {"order": 8001, "payment": 8002, "inventory": 8003}
PROMETHEUS = "http://127.0.0.1:9090"
RULES = Path(__file__).resolve().parents[2] / "infra/monitoring/rules"
# Targets that are down unless `make scale-out` runs them, and the relays under RELAY=debezium
# (Kafka Connect publishes the outboxes; stack.sh exports RELAY): their absence is not a fault.
OPTIONAL_JOBS = {"scale-out"} | ({"relay"} if os.environ.get("RELAY") == "debezium" else set())
DEADLINE_S = 90


def probe(port: int) -> str:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"not ready: {response.text[:200]}"


def alert_names() -> set[str]:
    """Every alert the rules files define: what Prometheus must have loaded."""
    return {
        rule["alert"]
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def prometheus_problems() -> list[str]:
    """What keeps Prometheus from being healthy: targets down, alerts not loaded (empty: healthy)."""
    try:
        targets = httpx.get(f"{PROMETHEUS}/api/v1/targets", timeout=3).json()["data"]["activeTargets"]
        groups = httpx.get(f"{PROMETHEUS}/api/v1/rules", timeout=3).json()["data"]["groups"]
    except httpx.HTTPError as exc:
        return [f"Prometheus unreachable at {PROMETHEUS} ({type(exc).__name__})"]
    down = [
        f"{t['labels']['job']} target {t['scrapeUrl']} is {t['health']} {t['lastError']}".rstrip()
        for t in targets
        if t["labels"]["job"] not in OPTIONAL_JOBS and t["health"] != "up"
    ]
    loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    missing = sorted(alert_names() - loaded)
    return down + ([f"alerts not loaded: {', '.join(missing)}"] if missing else [])


def prometheus_summary() -> str:
    problems = prometheus_problems()
    return "healthy: every target up, every alert loaded" if not problems else "; ".join(problems)


def wait_for_prometheus() -> int:
    deadline = time.monotonic() + DEADLINE_S
    while (problems := prometheus_problems()) and time.monotonic() < deadline:
        time.sleep(1)
    if problems:
        for problem in problems:
            print(f"prometheus: {problem} (see {PROMETHEUS}/targets, .run/logs/prometheus.log)", file=sys.stderr)
        return 1
    print(f"prometheus: {PROMETHEUS} every target up, {len(alert_names())} alerts loaded")
    return 0


def wait_for_services() -> int:
    deadline = time.monotonic() + DEADLINE_S
    pending = dict(APIS)
    while pending and time.monotonic() < deadline:
        pending = {name: port for name, port in pending.items() if probe(port) != "ready"}
        if pending:
            time.sleep(0.5)
    if pending:
        for name, port in pending.items():
            print(f"{name}-api on :{port}: {probe(port)} (see .run/logs/{name}-*.log)", file=sys.stderr)
        return 1
    print("services: order :8001, payment :8002, inventory :8003 ready")
    return 0


def main() -> int:
    if "--report" in sys.argv:
        for name, port in APIS.items():
            print(f"{name + '-api health':26} {probe(port)}")
        print(f"{'prometheus health':26} {prometheus_summary()}")
        return 0
    if "--prometheus" in sys.argv:
        return wait_for_prometheus()
    return wait_for_services()


if __name__ == "__main__":
    sys.exit(main())
