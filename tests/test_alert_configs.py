"""The operations files in ``configs/`` as the tools that read them do: Prometheus' promtool
checks and unit-tests the alert rules, systemd verifies the unit. The Grafana dashboard's
metric names are checked against a real server's /metrics in ``test_alerts_webhooks.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "configs" / "prometheus" / "avatarcast-alerts.yml"
RULE_TESTS = ROOT / "configs" / "prometheus" / "avatarcast-alerts.test.yml"
UNIT = ROOT / "configs" / "systemd" / "avatarcast.service"
DASHBOARD = ROOT / "configs" / "grafana" / "avatarcast-dashboard.json"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required: apt-get install {package} (scripts/setup.sh does)"
    return path


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    promtool = _tool("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 15 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL error does not pass."""
    promtool = _tool("promtool", "prometheus")
    broken = RULES.read_text().replace("> 0", "> > 0", 1)
    (tmp_path / "broken.yml").write_text(broken)
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "broken.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode != 0


def _verify(unit: str, tmp_path: Path) -> str:
    """``systemd-analyze verify`` of ``unit`` with ExecStart at this checkout's avatarcast."""
    analyze = _tool("systemd-analyze", "systemd")
    exe = Path(sys.executable).with_name("avatarcast")
    text = "\n".join(
        f"ExecStart={exe} serve" if line.startswith("ExecStart=") else line
        for line in unit.splitlines()
    )
    (tmp_path / "avatarcast.service").write_text(text + "\n")
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "avatarcast.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else " (failed)")


def test_systemd_unit_verifies_with_notify_and_watchdog(tmp_path: Path) -> None:
    text = UNIT.read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[:1] != "#"
    )
    assert settings["Type"] == "notify" and settings["KillSignal"] == "SIGTERM"
    assert int(settings["WatchdogSec"]) > 0 and int(settings["TimeoutStopSec"]) >= 30
    assert _verify(text, tmp_path) == ""
    broken = text.replace("Type=notify", "Type=notfy")
    assert "notfy" in _verify(broken, tmp_path)


def test_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in board["panels"]:
        assert panel["type"] in ("timeseries", "stat", "table"), panel["type"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "instance"} <= names
