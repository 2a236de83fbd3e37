"""``deploy/k8s/``: the API's Deployment and Service, checked against the Kubernetes API
schemas that ``kubernetes-validate`` ships (offline: these tests forbid every socket connect),
and for what the schemas cannot see: secrets from a Secret, labels that match, settings that
exist. No cluster runs here; nothing is applied.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from avatarcast.settings import Settings

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
#: the oldest Kubernetes minor still supported upstream when this was written
VERSION = "1.32"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation must not fetch a schema: any connect fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network use during validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def documents() -> Iterator[dict[str, Any]]:
    files = sorted(K8S.glob("*.yaml"))
    assert files, "no manifests in deploy/k8s"
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield doc


def by_kind(kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind]
    return found


def test_every_manifest_matches_the_kubernetes_schema() -> None:
    kinds = []
    for doc in documents():
        kubernetes_validate.validate(doc, VERSION, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["Deployment", "Service"]


def test_the_schema_check_catches_a_broken_manifest() -> None:
    broken = copy.deepcopy(by_kind("Deployment"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)
    unknown = copy.deepcopy(by_kind("Deployment"))
    unknown["spec"]["template"]["spec"]["containers"][0]["envFrom_typo"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, VERSION, strict=True)


def test_database_url_and_server_key_come_from_a_secret() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    env = {e["name"]: e for e in api["env"]}
    for name in ("AVATARCAST_DATABASE_URL", "AVATARCAST_SECRETS__SERVER_KEY"):
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "avatarcast"
    text = "".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert "kind: Secret" not in text  # no secret values in the repository
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["allowPrivilegeEscalation"] is False


def test_every_setting_named_exists() -> None:
    (api,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    for entry in api["env"]:
        path = entry["name"].removeprefix("AVATARCAST_").lower().split("__")
        model: type[BaseModel] = Settings
        for part in path[:-1]:
            annotation = model.model_fields[part].annotation
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), part
            model = annotation
        assert path[-1] in model.model_fields, entry["name"]


def test_service_reaches_the_pods_and_probes_use_health_routes() -> None:
    deployment, service = by_kind("Deployment"), by_kind("Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert api["command"][-1] == str(ports["http"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["replicas"] >= 2
