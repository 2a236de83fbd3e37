"""``deploy/k8s/``: the API's Deployment and Service, checked against the Kubernetes API
schemas that ``kubernetes-validate`` ships (offline: these tests forbid every socket connect),
and for what the schemas cannot see: secrets from a Secret, labels that match, settings that
exist. No cluster runs here; nothing is applied.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from avatarcast.runner.cluster import NODE_ENV, SYSTEM_CONFIG
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
        if doc["kind"] != "RayCluster":  # a custom resource: checked below
            kubernetes_validate.validate(doc, VERSION, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["Deployment", "RayCluster", "Service"]


#: The RayCluster fields of KubeRay's ray.io/v1 CRD this manifest may use (from KubeRay's
#: RayCluster configuration guide, docs.ray.io "RayCluster Configuration"); a typo in a field
#: name is silently dropped by a lenient apply, so an unknown one fails here.
RAYCLUSTER_SPEC = {"rayVersion", "headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling"}
HEAD_GROUP = {"rayStartParams", "template", "serviceType"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"}


def ray_cluster_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a RayCluster: unknown fields, non-string start parameters (KubeRay
    passes them to ``ray start`` as strings), bad replica bounds, and each pod template as a
    Kubernetes Pod (strict schema)."""
    problems: list[str] = []
    if doc.get("apiVersion") != "ray.io/v1":
        problems.append(f"apiVersion {doc.get('apiVersion')!r}")
    spec = doc["spec"]
    problems += [f"spec.{k}" for k in spec.keys() - RAYCLUSTER_SPEC]
    groups = [("headGroupSpec", spec["headGroupSpec"], HEAD_GROUP)]
    groups += [
        (f"workerGroupSpecs[{i}]", g, WORKER_GROUP) for i, g in enumerate(spec["workerGroupSpecs"])
    ]
    for where, group, allowed in groups:
        problems += [f"{where}.{k}" for k in group.keys() - allowed]
        params = group.get("rayStartParams", {})
        problems += [
            f"{where}.rayStartParams.{k}" for k, v in params.items() if not isinstance(v, str)
        ]
        if (
            "minReplicas" in group
            and not group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        ):
            problems.append(f"{where}: replicas outside minReplicas..maxReplicas")
        pod = {"apiVersion": "v1", "kind": "Pod", **group["template"]}
        pod["metadata"] = {"name": "check", **pod.get("metadata", {})}
        try:
            kubernetes_validate.validate(pod, VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where}.template: {e.message}")
    return problems


def test_the_ray_cluster_uses_known_fields_and_valid_pods() -> None:
    cluster = by_kind("RayCluster")
    assert ray_cluster_problems(cluster) == []
    broken = copy.deepcopy(cluster)
    broken["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] = 4
    broken["spec"]["workerGroupSpecs"][0]["minReplica"] = 1
    broken["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePull"] = "x"
    found = ray_cluster_problems(broken)
    assert any("rayStartParams.num-cpus" in p for p in found), found
    assert any(p.endswith(".minReplica") for p in found), found
    assert any(p.startswith("headGroupSpec.template") for p in found), found


def test_the_api_drives_the_ray_cluster_and_runs_no_stream_itself() -> None:
    """The API pods join the head's Service as zero-CPU nodes (a stream's actor asks for a
    CPU, so none lands there) and name the same address in ``runner.ray_address``."""
    cluster = by_kind("RayCluster")
    (api,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert env["AVATARCAST_RUNNER__BACKEND"] == "ray"
    head_service = f"{cluster['metadata']['name']}-head-svc:6379"  # KubeRay's naming
    assert env["AVATARCAST_RUNNER__RAY_ADDRESS"] == head_service
    script = api["command"][-1]
    assert f"ray start --address={head_service} --num-cpus=0" in script
    assert script.rstrip().endswith("exec avatarcast serve --host 0.0.0.0 --port 8000")
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    # the Ray settings the code measured its failover with (runner/cluster.py)
    head_params = cluster["spec"]["headGroupSpec"]["rayStartParams"]
    # KubeRay builds a shell command line: the JSON goes in single quotes
    quoted = head_params["system-config"]
    assert quoted[0] == quoted[-1] == "'", quoted
    assert json.loads(quoted[1:-1]) == SYSTEM_CONFIG
    for group in cluster["spec"]["workerGroupSpecs"]:
        (worker,) = group["template"]["spec"]["containers"]
        worker_env = {e["name"]: e.get("value") for e in worker["env"]}
        assert {k: worker_env.get(k) for k in NODE_ENV} == NODE_ENV
    assert Settings().runner.ray_num_cpus > 0


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
    assert api["command"][-1].endswith(f"--port {ports['http']}")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["replicas"] >= 2
