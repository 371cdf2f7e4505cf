"""The alert rules (infra/monitoring/rules) are valid, tested and documented: promtool checks both
Prometheus configurations and the rules and runs their unit tests (infra/monitoring/tests), every
alert has a firing and a not-firing test case, a severity, and a runbook section that exists.

promtool comes with Debian's prometheus package (infra/scripts/install.sh installs it).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "infra/monitoring"
RULES = MONITORING / "rules/alerts.yml"
RULE_TESTS = MONITORING / "tests/alerts_test.yml"
CONFIGS = ("prometheus-local.yml", "prometheus.yml")  # the local stack's and docker-compose's
RUNBOOK = REPO / "docs/runbook.md"
SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is missing: make install (Debian's prometheus package)"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, check=False)


def alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def alert_test_cases() -> list[dict]:
    return [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("config", CONFIGS)
def test_a_prometheus_configuration_is_valid_and_loads_the_rules(config):
    result = promtool("check", "config", str(MONITORING / config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load((MONITORING / config).read_text())["rule_files"] == ["rules/*.yml"]


def test_the_rules_are_valid():
    result = promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_promtool_unit_tests():
    result = promtool("test", "rules", str(RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_a_rule_test_whose_expectation_is_wrong(tmp_path):
    """The unit tests above can fail: the same file with one alert expected where none fires."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    quiet = next(case for test in tests["tests"] for case in test["alert_rule_test"] if not case["exp_alerts"])
    quiet["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    broken = tmp_path / "alerts_test.yml"
    broken.write_text(yaml.safe_dump(tests))

    assert promtool("test", "rules", str(broken)).returncode != 0


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not():
    cases = alert_test_cases()
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}

    assert set(alerts()) - firing == set(), "alerts never tested firing"
    assert set(alerts()) - quiet == set(), "alerts never tested not firing"
    assert {case["alertname"] for case in cases} <= set(alerts()), "a test names an alert that does not exist"


@pytest.mark.parametrize("name", sorted(alerts()))
def test_an_alert_has_a_severity_a_summary_a_description_and_a_runbook_section(name):
    rule = alerts()[name]
    annotations = rule["annotations"]
    document, _, anchor = annotations["runbook"].partition("#")

    assert rule["labels"]["severity"] in SEVERITIES
    assert annotations["summary"] and annotations["description"]
    assert document == "docs/runbook.md"
    assert anchor in github_anchors(RUNBOOK.read_text()), f"no section #{anchor} in docs/runbook.md"


def test_anchors_are_computed_as_github_computes_them():
    assert github_anchors("## Alerts\n### UnderReplicatedPartitions\n## A port is taken") == {
        "alerts",
        "underreplicatedpartitions",
        "a-port-is-taken",
    }
