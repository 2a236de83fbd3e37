"""The compose file and Dockerfile as a production base (docker cannot run here: they are read).

OWASP API8:2023 (Security Misconfiguration): default credentials, a root container, the SSRF
check switched off for every destination, an RTMP ingest anyone can publish to, no TLS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from avatarcast.runner.cluster import NODE_ENV, SYSTEM_CONFIG
from avatarcast.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]+\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_takes_secrets_from_the_environment_api8_2023() -> None:
    """API8:2023: no password in the file; each secret is a required variable."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert "avatarcast:avatarcast@" not in text
    services = _compose()["services"]
    url = services["avatarcast"]["environment"]["AVATARCAST_DATABASE_URL"]
    found = REQUIRED.search(url)
    assert found and found.group(1) == "POSTGRES_PASSWORD"
    assert REQUIRED.fullmatch(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    rtmp = services["rtmp"]["environment"]
    assert REQUIRED.fullmatch(rtmp["MTX_AUTHINTERNALUSERS_0_PASS"])
    assert rtmp["MTX_AUTHINTERNALUSERS_0_PERMISSIONS_0_ACTION"] == "publish"
    # nobody but the publisher may publish: the anonymous user only reads
    anonymous = [v for k, v in rtmp.items() if k.startswith("MTX_AUTHINTERNALUSERS_1_PERM")]
    assert rtmp["MTX_AUTHINTERNALUSERS_1_USER"] == "any" and "publish" not in anonymous
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASS|SECRET|KEY", key) and not key.endswith("_HOSTS"):
                assert REQUIRED.fullmatch(str(value)), (name, key)


def test_compose_allows_only_its_own_rtmp_service_as_private_api7_api8_2023() -> None:
    """API7:2023: the SSRF check stays on for every destination but the bundled ingest."""
    env = _compose()["services"]["avatarcast"]["environment"]
    assert not any("ALLOW_PRIVATE" in key for key in env)
    hosts = env["AVATARCAST_API__PRIVATE_DESTINATION_HOSTS"]
    policy = Settings(api={"private_destination_hosts": yaml.safe_load(hosts)}).api.net_policy()
    assert policy.private_hosts == frozenset({"rtmp"}) and not policy.allow_private


def test_settings_read_the_compose_value_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _compose()["services"]["avatarcast"]["environment"]
    key = "AVATARCAST_API__PRIVATE_DESTINATION_HOSTS"
    monkeypatch.setenv(key, env[key])
    assert Settings().api.net_policy().private_hosts == frozenset({"rtmp"})


def test_tls_in_front_and_the_app_unpublished_api8_2023() -> None:
    """API8:2023: clients reach the app only through the TLS proxy, which has a certificate."""
    services = _compose()["services"]
    assert "ports" not in services["avatarcast"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy")
    command = proxy["command"]
    assert command[:2] == ["caddy", "reverse-proxy"] and "avatarcast:8000" in command
    assert REQUIRED.fullmatch(command[command.index("--from") + 1])
    assert "443:443" in proxy["ports"]


def test_the_app_runs_as_a_non_root_user_api8_2023() -> None:
    """API8:2023: the image's last USER is not root, and compose does not override it."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert _compose()["services"]["avatarcast"]["user"].split(":")[0] not in ("root", "0")


def _cluster() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    return loaded


def test_cluster_compose_runs_two_replicas_on_a_ray_cluster() -> None:
    """#16: two API replicas behind the proxy, streams on a Ray head + worker. The replicas
    share one configuration, join the head as zero-CPU nodes (a stream asks for a CPU, so none
    lands on them) and name the head in ``runner.ray_address``; nothing Ray serves is
    published (its ports have no authentication); nothing runs as root."""
    services = _cluster()["services"]
    assert services["avatarcast"] == services["avatarcast-2"]
    api = services["avatarcast"]
    env = api["environment"]
    assert env["AVATARCAST_RUNNER__BACKEND"] == "ray"
    assert env["AVATARCAST_RUNNER__RAY_ADDRESS"] == "ray-head:6379"
    assert "ray start --address=ray-head:6379 --num-cpus=0" in api["command"][-1]
    assert api["command"][-1].endswith("exec avatarcast serve --host 0.0.0.0 --port 8000")
    assert api["build"]["args"]["EXTRAS"] == "ray"
    head = services["ray-head"]["command"]
    assert "--head" in head and "--port=6379" in head and "--num-cpus=0" in head
    assert "--address=ray-head:6379" in services["ray-worker"]["command"][-1]
    # the Ray settings the code measured its failover with (runner/cluster.py)
    assert f"--system-config={json.dumps(SYSTEM_CONFIG, separators=(',', ':'))}" in head
    worker_env = services["ray-worker"]["environment"]
    assert {k: worker_env.get(k) for k in NODE_ENV} == NODE_ENV
    assert Settings().runner.ray_num_cpus > 0
    proxy = services["proxy"]["command"]
    assert [proxy[i + 1] for i, a in enumerate(proxy) if a == "--to"] == [
        "avatarcast:8000",
        "avatarcast-2:8000",
    ]
    for name, service in services.items():
        if name != "proxy":
            assert "ports" not in service, name
            assert service["user"].split(":")[0] not in ("root", "0"), name
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASS|SECRET|KEY", key) and not key.endswith("_HOSTS"):
                assert REQUIRED.fullmatch(str(value)), (name, key)
            assert key.startswith(("AVATARCAST_", "FORWARDED_")) or key in NODE_ENV, key
    # every setting named exists (a typo would be ignored by the app)
    names = [k for s in services.values() for k in (s.get("environment") or {})]
    for name in (n for n in names if n.startswith("AVATARCAST_")):
        section, _, field = name.removeprefix("AVATARCAST_").lower().partition("__")
        if not field:
            assert section in Settings.model_fields, name
        else:
            assert field in type(getattr(Settings(), section)).model_fields, name
    # the image has the extra: Dockerfile installs ".[ray]" when EXTRAS=ray
    assert 'pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"' in (ROOT / "Dockerfile").read_text()
