"""The compose file, the Dockerfiles and the Kubernetes manifests, checked against the code.

No container engine runs here, so these tests keep the deployment files honest another way:
every command they run exists in the local install and starts, every setting they pass is one
Postroom knows, every image holds only its own service, and the manifests agree with compose.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from postroom.config import Settings
from tests.conftest import empty_redis, fresh_database

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}
K8S_BASE = ROOT / "deploy" / "k8s" / "base"
KNOWN_SETTINGS = {f"POSTROOM_{name.upper()}" for name in Settings.model_fields}
# Settings the container images set for the standard ports.
CONTAINER_PORTS = {
    "POSTROOM_SMTP_PORT": 25, "POSTROOM_SUBMISSION_PORT": 587, "POSTROOM_SUBMISSIONS_PORT": 465,
    "POSTROOM_POP3_PORT": 110, "POSTROOM_POP3S_PORT": 995, "POSTROOM_IMAP_PORT": 143,
    "POSTROOM_IMAPS_PORT": 993, "POSTROOM_MANAGESIEVE_PORT": 4190, "POSTROOM_HTTP_PORT": 8080,
}  # fmt: skip
# What each service must be listening on once it has started.
LISTENS = {
    "smtp-in": ["POSTROOM_SMTP_PORT", "POSTROOM_SUBMISSION_PORT", "POSTROOM_SUBMISSIONS_PORT"],
    "access": ["POSTROOM_POP3_PORT", "POSTROOM_POP3S_PORT", "POSTROOM_IMAP_PORT",
               "POSTROOM_IMAPS_PORT", "POSTROOM_MANAGESIEVE_PORT"],
    "mailbox-api": ["POSTROOM_HTTP_PORT"],
}  # fmt: skip


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S_BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def dockerfile(service: dict[str, Any]) -> str:
    return (ROOT / service["build"]["dockerfile"]).read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


# --- compose ----------------------------------------------------------------------------


def test_compose_has_the_whole_stack() -> None:
    assert set(SERVICES) == {
        "postgres", "redis", "migrate", "smtp-in", "delivery-worker", "beat", "access",
        "mailbox-api",
    }  # fmt: skip


def test_databases_have_health_checks_and_volumes() -> None:
    for name in ("postgres", "redis"):
        assert "healthcheck" in SERVICES[name], name
        assert SERVICES[name]["volumes"], name


def test_services_wait_for_the_migration_and_redis() -> None:
    for name, svc in OURS.items():
        if name == "migrate":
            assert svc["depends_on"] == {"postgres": {"condition": "service_healthy"}}
            continue
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert svc["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_delivery_workers_can_be_scaled() -> None:
    worker = SERVICES["delivery-worker"]
    # --scale needs no fixed container name and no published host port.
    assert "container_name" not in worker
    assert "ports" not in worker


def test_published_ports_are_the_standard_ones() -> None:
    published = {
        name: sorted(int(p.split(":")[0]) for p in svc.get("ports", []))
        for name, svc in OURS.items()
        if svc.get("ports")
    }
    assert published == {
        "smtp-in": [25, 465, 587],
        "access": [110, 143, 993, 995, 4190],
        "mailbox-api": [8080],
    }


def test_every_variable_compose_sets_is_a_known_setting() -> None:
    for name, svc in OURS.items():
        for key in compose_env(svc):
            assert key in KNOWN_SETTINGS, f"{name}: {key} is not a Postroom setting"
    example = (ROOT / ".env.example").read_text()
    for key in re.findall(r"^#? ?(POSTROOM_[A-Z_]+)=", example, re.M):
        assert key in KNOWN_SETTINGS, f".env.example: {key} is not a Postroom setting"


# --- Dockerfiles ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OURS))
def test_each_image_holds_only_its_own_service(name: str) -> None:
    text = dockerfile(OURS[name])
    own = Path(OURS[name]["build"]["dockerfile"]).parent.as_posix()
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", text, re.M))
    assert copied == {"constraints.txt", "shared/", f"{own}/"}
    installs = re.search(r"pip install [^\n]*\\\n\s*-c constraints.txt ([^\n]*)$", text, re.M)
    assert installs is not None
    assert installs.group(1).split() == ["./shared", f"./{own}"]


@pytest.mark.parametrize("name", sorted(OURS))
def test_images_run_as_a_non_root_user(name: str) -> None:
    text = dockerfile(OURS[name])
    assert re.search(r"^USER postroom$", text, re.M)
    assert text.count("FROM ") == 2  # multi-stage: the build tools stay behind


@pytest.mark.parametrize("name", sorted(OURS))
def test_image_settings_are_known_and_ports_exposed(name: str) -> None:
    text = dockerfile(OURS[name])
    env = dict(re.findall(r"(POSTROOM_[A-Z_]+)=(\S+)", text))
    for key in env:
        assert key in KNOWN_SETTINGS, f"{name}: {key}"
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.*)$", text, re.M) for p in line.split()}
    for key in env:
        if key in CONTAINER_PORTS:
            assert int(env[key]) == CONTAINER_PORTS[key]
            assert CONTAINER_PORTS[key] in exposed


@pytest.mark.parametrize("name", sorted(OURS))
def test_image_default_command_is_the_compose_command(name: str) -> None:
    svc = OURS[name]
    match = re.search(r"^CMD (\[.*\])$", dockerfile(svc), re.M)
    assert match is not None
    if name not in ("migrate", "beat"):  # they reuse the worker image with another command
        assert yaml.safe_load(match.group(1)) == svc["command"]


# --- every command starts ---------------------------------------------------------------


def wait_for_ports(ports: list[int], process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        for port in list(pending):
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        time.sleep(0.1)
    assert not pending, f"not listening on {sorted(pending)} after {timeout} s"


@pytest.fixture
def empty_stack(_servers: dict[str, str]) -> Iterator[tuple[str, str]]:
    """An empty migrated database and an empty Redis database of this test's own: a worker or
    beat started on the run's shared ones would pick up other tests' queued deliveries and
    could still be busy with them when asked to stop."""
    with (
        fresh_database(_servers["pg"], "postroom_deploy") as url,
        empty_redis(_servers["redis"], 1) as rurl,
    ):
        yield url, rurl


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_compose_command_exists_and_starts(
    name: str, empty_stack: tuple[str, str], tmp_path: Path
) -> None:
    database_url, redis_url = empty_stack
    svc = OURS[name]
    argv = list(svc["command"])
    if argv[0] == "python":
        argv[0] = sys.executable
    else:
        argv[0] = str(Path(sys.executable).with_name(argv[0]))
        assert Path(argv[0]).exists(), f"{svc['command'][0]} is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(compose_env(svc))
    # The compose values name hosts of the compose network; here they are the test servers,
    # and the standard ports become free high ones.
    env.update(
        POSTROOM_DATABASE_URL=database_url,
        POSTROOM_REDIS_URL=redis_url,
        POSTROOM_DATA_DIR=str(tmp_path),
        POSTROOM_BIND_ADDRESS="127.0.0.1",
        POSTROOM_HOSTNAME="mx.test",
        POSTROOM_DNS_RESOLVERS=os.environ["POSTROOM_DNS_RESOLVERS"],
    )
    for key in CONTAINER_PORTS:
        env[key] = str(free_port())
    env["POSTROOM_METRICS_PORT"] = str(free_port())
    if name == "migrate":
        done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        ports = [int(env[key]) for key in LISTENS.get(name, [])]
        if ports:
            wait_for_ports(ports, process, timeout=30)
        else:
            time.sleep(4)  # a worker or beat: it must still be running after start-up
            assert process.poll() is None, f"{shlex.join(argv)} exited with {process.returncode}"
        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(timeout=20)
        assert code in (0, -signal.SIGTERM), f"stopped with {code}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
        process.stdout and process.stdout.close()
    assert "Traceback" not in output, output[-3000:]


# --- Kubernetes -------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    files = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_a_deployment_per_service_with_the_compose_image_and_command() -> None:
    deployments = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}
    assert set(deployments) == set(OURS) - {"migrate"}
    for name, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == OURS[name]["image"].removesuffix(":latest")
        assert container["command"] == OURS[name]["command"]


def test_migrate_job_runs_the_compose_migration() -> None:
    [job] = [d for d in k8s_documents() if d["kind"] == "Job"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == OURS["migrate"]["command"]
    assert container["image"] == OURS["migrate"]["image"].removesuffix(":latest")


def test_container_ports_match_the_images() -> None:
    for d in k8s_documents():
        if d["kind"] != "Deployment":
            continue
        name = d["metadata"]["name"]
        [container] = d["spec"]["template"]["spec"]["containers"]
        ports = {p["containerPort"] for p in container.get("ports", []) if p["name"] != "metrics"}
        published = {int(p.split(":")[1]) for p in OURS[name].get("ports", [])}
        assert ports == published, name


def test_listeners_have_probes_and_the_api_uses_its_health_endpoints() -> None:
    for d in k8s_documents():
        if d["kind"] != "Deployment" or d["metadata"]["name"] not in LISTENS:
            continue
        [container] = d["spec"]["template"]["spec"]["containers"]
        assert "readinessProbe" in container
        assert "livenessProbe" in container
    [api] = [d for d in k8s_documents() if d["metadata"]["name"] == "mailbox-api" and
             d["kind"] == "Deployment"]  # fmt: skip
    [container] = api["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_configmap_holds_only_known_settings() -> None:
    [config] = [d for d in k8s_documents() if d["kind"] == "ConfigMap"]
    for key in config["data"]:
        assert key in KNOWN_SETTINGS, key
    example = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "secret.example.yaml").read_text())
    urls = next(d for d in example if d["metadata"]["name"] == "postroom-urls")
    assert set(urls["stringData"]) == {"POSTROOM_DATABASE_URL", "POSTROOM_REDIS_URL"}


def test_one_beat_and_autoscaled_workers() -> None:
    docs = k8s_documents()
    [beat] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "beat"]
    assert beat["spec"]["replicas"] == 1
    [hpa] = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "delivery-worker"
    keda = ROOT / "deploy" / "k8s" / "components" / "keda"
    scaled = [d for d in yaml.safe_load_all((keda / "scaledobject.yaml").read_text()) if d]
    [obj] = [d for d in scaled if d["kind"] == "ScaledObject"]
    [redis_trigger] = [t for t in obj["spec"]["triggers"] if t["type"] == "redis"]
    from postroom.queue import DELIVERY_QUEUE

    assert redis_trigger["metadata"]["listName"] == DELIVERY_QUEUE
    assert obj["spec"]["scaleTargetRef"]["name"] == "delivery-worker"
