"""The alerting rules (deploy/prometheus/alerts.yml) pass their promtool unit tests.

promtool comes with Debian's ``prometheus`` package; ``.ci/run`` installs it when missing. A
machine without it fails here rather than skipping, so CI never passes with the rules untested.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed (apt-get install prometheus; .ci/run does it)")
    return found


def test_the_alert_rules_are_valid() -> None:
    run = subprocess.run(
        [_promtool(), "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_alert_rules_fire_as_their_unit_tests_say() -> None:
    run = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_test() -> None:
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text(encoding="utf-8"))
    tested = yaml.safe_load((RULES / "alerts_test.yml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    covered = {case["alertname"] for test in tested["tests"] for case in test["alert_rule_test"]}
    assert alerts - covered == set()


def test_alerts_only_use_metrics_the_gateway_exports() -> None:
    import re

    from gateway import metrics

    text = (RULES / "alerts.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\bgateway_[a-z_]+", text))
    source = Path(metrics.__file__).read_text(encoding="utf-8")
    exported = set(re.findall(r'"(gateway_[a-z_]+)"', source))
    counters = {f"{name}_total" for name in exported}  # prometheus-client adds _total to counters
    assert used - exported - counters == set()
