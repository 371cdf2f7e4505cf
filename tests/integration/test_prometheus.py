"""The running Prometheus (`make up`: monitoring:prometheus on 127.0.0.1:9090) has every target of
the always-on jobs up, every alert of infra/monitoring/rules loaded and evaluating without error,
and every metric the brokers' JMX exporter rules name, from each broker."""

import time
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = "http://127.0.0.1:9090"
LOCAL_CONFIG = REPO / "infra/monitoring/prometheus-local.yml"
OPTIONAL_JOBS = {"scale-out"}  # up only after `make scale-out`
BROKERS = 3


def api(path: str, **params: str) -> dict:
    response = httpx.get(f"{PROMETHEUS}/api/v1/{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture(scope="module", autouse=True)
def _prometheus_running() -> None:
    try:
        api("status/buildinfo")
    except httpx.HTTPError as exc:
        pytest.fail(f"Prometheus is not running on {PROMETHEUS} ({exc!r}): make up starts it")


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for path in (REPO / "infra/monitoring/rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def always_on_jobs() -> set[str]:
    return {job["job_name"] for job in yaml.safe_load(LOCAL_CONFIG.read_text())["scrape_configs"]} - OPTIONAL_JOBS


def targets_not_up() -> list[str]:
    return [
        f"{target['labels']['job']} {target['scrapeUrl']}: {target['health']} {target['lastError']}"
        for target in api("targets")["activeTargets"]
        if target["labels"]["job"] not in OPTIONAL_JOBS and target["health"] != "up"
    ]


def test_every_target_of_the_always_on_jobs_is_up():
    # A broker or service restarted a moment ago (another test's fault) is down for a scrape or two.
    deadline = time.monotonic() + 60
    while (down := targets_not_up()) and time.monotonic() < deadline:
        time.sleep(1)
    jobs = {target["labels"]["job"] for target in api("targets")["activeTargets"]}

    assert down == []
    assert always_on_jobs() <= jobs, "a job of prometheus-local.yml has no target: another configuration runs"


def test_every_alert_of_the_rules_file_is_loaded_and_evaluates_without_error():
    rules = [rule for group in api("rules")["groups"] for rule in group["rules"] if rule["type"] == "alerting"]

    assert {rule["name"] for rule in rules} == alert_names()
    assert {rule["name"]: rule.get("lastError", "") for rule in rules if rule["health"] != "ok"} == {}


def test_each_broker_exports_every_metric_of_the_jmx_exporter_rules():
    config = yaml.safe_load((REPO / "infra/kafka/jmx-exporter.yml").read_text())
    # A counter's rule names the series with its _total, as Prometheus stores it.
    names = {rule["name"] for rule in config["rules"]}
    counts = api("query", query='count by (__name__) ({job="kafka", __name__=~"kafka_.+"})')["result"]
    exported = {sample["metric"]["__name__"]: int(sample["value"][1]) for sample in counts}

    assert names <= set(exported), names - set(exported)
    for name in names - {"kafka_network_request_total_time_ms", "kafka_network_requests_total"}:
        assert exported[name] == BROKERS, f"{name}: {exported[name]} series, one per broker expected"


def test_the_cluster_reports_one_active_controller_and_no_offline_partition():
    def value(query: str) -> float:
        (sample,) = api("query", query=query)["result"]
        return float(sample["value"][1])

    assert value("sum(kafka_controller_active_controller_count)") == 1
    assert value("sum(kafka_controller_offline_partitions)") == 0
