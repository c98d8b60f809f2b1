"""The cluster recipes in clusters/: schemas, cross-file consistency, and the local.sh script.

Fast and offline: nothing here starts Ray, pulls an image or talks to a cloud. The Ray
cluster-launcher schema is the one shipped inside the installed ray package; the KubeRay
manifests are checked against a small schema of the fields this project relies on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ROOT / "clusters"
AWS = CLUSTERS / "aws.yaml"
RAYCLUSTER = CLUSTERS / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTERS / "kuberay" / "rayjob.yaml"
DOCKERFILE = CLUSTERS / "Dockerfile"
README = CLUSTERS / "README.md"
LOCAL_SH = CLUSTERS / "local.sh"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --- every YAML file ------------------------------------------------------------------------------


def test_every_yaml_file_parses_to_a_mapping():
    paths = sorted([*CLUSTERS.rglob("*.yaml"), *CLUSTERS.rglob("*.yml")])
    assert {AWS, RAYCLUSTER, RAYJOB} <= set(paths)
    for path in paths:
        doc = load(path)
        assert isinstance(doc, dict) and doc, f"{path.relative_to(ROOT)} is not a non-empty mapping"


# --- AWS: the Ray cluster launcher ---------------------------------------------------------------


def ray_launcher_schema() -> dict:
    """The cluster-launcher JSON schema inside the installed ray package (found without importing
    ray, which would take seconds)."""
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations, "ray is not installed"
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "autoscaler" / "ray-schema.json"
    if not path.is_file():  # moved in some release: take any copy in the package
        found = sorted(package.rglob("ray-schema.json"))
        assert found, f"no ray-schema.json under {package}"
        path = found[0]
    return json.loads(path.read_text())


def worker_types(config: dict) -> dict[str, dict]:
    return {name: node for name, node in config["available_node_types"].items()
            if name != config["head_node_type"]}


def test_aws_config_matches_the_ray_cluster_launcher_schema():
    schema = ray_launcher_schema()
    config = load(AWS)
    jsonschema.validate(config, schema)
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]

    # The schema has teeth: a CPU count that is not an integer, or an unknown key, is rejected.
    broken = json.loads(json.dumps(config))
    name = next(iter(worker_types(broken)))
    broken["available_node_types"][name]["resources"]["CPU"] = "16"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "min_wokers": 1}, schema)


def test_aws_worker_type_advertises_cpus_within_the_worker_limits():
    config = load(AWS)
    workers = worker_types(config)
    assert workers, "no worker node type besides the head"
    for name, node in workers.items():
        cpus = node["resources"].get("CPU")
        assert isinstance(cpus, int) and cpus >= 1, f"{name}: resources.CPU must be a positive integer"
        low, high = node.get("min_workers", 0), node.get("max_workers", config["max_workers"])
        assert 0 <= low <= high <= config["max_workers"], f"{name}: min/max workers out of order"


def test_aws_setup_commands_install_the_project_and_its_data():
    config = load(AWS)
    commands = config["setup_commands"]
    joined = "\n".join(commands)
    installs = [c for c in commands if re.search(r"\bpip install\b", c)]
    assert installs, "no setup command runs pip install"
    # Either the published package or a checkout of the project (cloned in an earlier command).
    clone = re.search(r"git clone \S+ (\S+)", joined)
    targets = {"ntpt-ray"} | ({clone.group(1)} if clone else set())
    assert any(set(shlex.split(c)) & targets for c in installs), f"pip install of none of {targets}"
    assert re.search(r"\bntpt data --download\b", joined), "setup does not fill the data directory"
    assert "OMP_NUM_THREADS=1" in joined
    assert re.search(r"RAY_AUTH_MODE=\w+", joined), "nodes need one explicit RAY_AUTH_MODE"
    # The image's Python must be the project's (3.11).
    assert "py311" in config["docker"]["image"]


# --- Kubernetes: KubeRay manifests ----------------------------------------------------------------

QUANTITY = {"type": ["string", "integer", "number"]}
CONTAINER = {
    "type": "object",
    "required": ["name", "image", "resources"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "image": {"type": "string", "minLength": 1},
        "resources": {
            "type": "object",
            "required": ["requests", "limits"],
            "properties": {
                "requests": {"type": "object", "required": ["cpu"], "properties": {"cpu": QUANTITY}},
                "limits": {"type": "object", "required": ["cpu"], "properties": {"cpu": QUANTITY}},
            },
        },
    },
}
POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {"spec": {
        "type": "object",
        "required": ["containers"],
        "properties": {"containers": {"type": "array", "minItems": 1, "items": CONTAINER}},
    }},
}
# ray.io/v1 declares rayStartParams as map[string]string: numbers must be quoted.
RAY_START_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}
REPLICAS = {"type": "integer", "minimum": 0}
CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec", "workerGroupSpecs"],
    "properties": {
        "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "headGroupSpec": {
            "type": "object",
            "required": ["rayStartParams", "template"],
            "properties": {"rayStartParams": RAY_START_PARAMS, "template": POD_TEMPLATE},
        },
        "workerGroupSpecs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams",
                             "template"],
                "properties": {
                    "groupName": {"type": "string", "minLength": 1},
                    "replicas": REPLICAS,
                    "minReplicas": REPLICAS,
                    "maxReplicas": {"type": "integer", "minimum": 1},
                    "rayStartParams": RAY_START_PARAMS,
                    "template": POD_TEMPLATE,
                },
            },
        },
    },
}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
}
RAYCLUSTER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": METADATA,
        "spec": CLUSTER_SPEC,
    },
}
RAYJOB_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayJob"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["entrypoint", "rayClusterSpec", "shutdownAfterJobFinishes"],
            "properties": {
                "entrypoint": {"type": "string", "minLength": 1},
                "shutdownAfterJobFinishes": {"const": True},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "rayClusterSpec": CLUSTER_SPEC,
            },
        },
    },
}


def cluster_specs() -> dict[str, dict]:
    return {"raycluster.yaml": load(RAYCLUSTER)["spec"],
            "rayjob.yaml": load(RAYJOB)["spec"]["rayClusterSpec"]}


def groups(spec: dict):
    """(label, group) for the head group and every worker group of a RayClusterSpec."""
    yield "head", spec["headGroupSpec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], group


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay runs Ray in the first container


def cpus(quantity) -> float:
    """A Kubernetes cpu quantity ("2", 2, "500m") in CPUs."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_kuberay_manifests_match_the_schema():
    jsonschema.validate(load(RAYCLUSTER), RAYCLUSTER_SCHEMA)
    jsonschema.validate(load(RAYJOB), RAYJOB_SCHEMA)
    # The schema has teeth: an unquoted num-cpus (an int, not a string) is rejected.
    broken = load(RAYCLUSTER)
    broken["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, RAYCLUSTER_SCHEMA)


def test_cpu_quantities_parse():
    assert cpus("2") == 2 and cpus(8) == 8 and cpus("500m") == 0.5


def test_each_group_advertises_exactly_its_container_cpus():
    for name, spec in cluster_specs().items():
        for label, group in groups(spec):
            where = f"{name}: group {label}"
            resources = ray_container(group)["resources"]
            limit = cpus(resources["limits"]["cpu"])
            assert cpus(resources["requests"]["cpu"]) == limit, f"{where}: cpu request != limit"
            assert "num-cpus" in group["rayStartParams"], f"{where}: no num-cpus in rayStartParams"
            assert float(group["rayStartParams"]["num-cpus"]) == limit, (
                f"{where}: num-cpus {group['rayStartParams']['num-cpus']} != container cpu limit {limit}")
            if label != "head":
                assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], where


def test_rayjob_cluster_is_the_raycluster_manifest():
    specs = cluster_specs()
    assert specs["rayjob.yaml"] == specs["raycluster.yaml"], \
        "rayjob.yaml's rayClusterSpec drifted from raycluster.yaml's spec"


def dockerfile_workdir() -> str:
    found = re.findall(r"^WORKDIR\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert found, "clusters/Dockerfile sets no WORKDIR"
    return found[-1].rstrip("/")


def sweep_arguments() -> list[str]:
    """The arguments after `ntpt sweep` in the RayJob's entrypoint."""
    entrypoint = load(RAYJOB)["spec"]["entrypoint"]
    # KubeRay pastes the entrypoint into the submitter's shell line; operators would run there.
    assert not re.search(r"&&|\|\||[;|&<>`]|\$\(", entrypoint), f"entrypoint is not one command: {entrypoint}"
    words = shlex.split(entrypoint)
    assert words[:2] == ["ntpt", "sweep"], f"entrypoint does not run `ntpt sweep`: {entrypoint}"
    return words[2:]


def option(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def test_rayjob_entrypoint_joins_the_cluster_and_stores_on_the_volume():
    words = sweep_arguments()
    assert option(words, "--address") == "auto"
    store = option(words, "--store")
    assert store and store.startswith("/"), "--store must be an absolute path on the shared volume"
    mounts = [m["mountPath"] for _, g in groups(load(RAYJOB)["spec"]["rayClusterSpec"])
              for m in ray_container(g).get("volumeMounts", [])]
    assert any(store == m or store.startswith(m.rstrip("/") + "/") for m in mounts), \
        f"--store {store} is on no mounted volume ({mounts})"


def test_rayjob_entrypoint_runs_a_spec_that_exists():
    words = sweep_arguments()
    spec = words[0]
    assert not spec.startswith("-"), "the sweep spec must come first"
    workdir = dockerfile_workdir()
    relative = spec[len(workdir) + 1:] if spec.startswith(workdir + "/") else spec
    assert not relative.startswith("/"), f"{spec} is outside the image's WORKDIR {workdir}"
    assert relative.startswith("search/") and relative.endswith(".toml"), relative
    if not (ROOT / "search").is_dir():
        pytest.skip("search/ does not exist yet: cannot check that the RayJob's sweep spec exists")
    assert (ROOT / relative).is_file(), f"the RayJob runs {spec}, but {relative} is not in the repository"


def test_dockerfile_builds_the_project_image():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM\s+python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"\bpip install\b[^\n]*\s\.(\s|$)", text), "the Dockerfile does not `pip install .`"
    assert re.search(r"\bOMP_NUM_THREADS=1\b", text)
    assert re.search(r"^COPY\s+search\b", text, re.MULTILINE), "the image lacks the sweep specs"
    assert "ray[default]" in text, "KubeRay submits jobs through the dashboard: needs ray[default]"
    # Ray inside the image is the version the manifests announce.
    version = re.search(r"^ARG\s+RAY_VERSION=(\S+)", text, re.MULTILINE)
    assert version, "the Dockerfile pins no RAY_VERSION"
    for name, spec in cluster_specs().items():
        assert spec["rayVersion"] == version.group(1), f"{name}: rayVersion != Dockerfile RAY_VERSION"


def test_manifests_use_the_image_the_readme_builds():
    builds = re.findall(r"docker build\b[^\n]*?\s-t\s+(\S+)", README.read_text())
    assert len(set(builds)) == 1, f"expected one `docker build -t IMAGE` in the README, found {builds}"
    images = {ray_container(group)["image"] for spec in cluster_specs().values()
              for _, group in groups(spec)}
    assert images == set(builds), f"manifests use {images}, the README builds {builds[0]}"


def test_readme_covers_every_target():
    text = README.read_text()
    for needle in ("clusters/local.sh up", "clusters/local.sh down", "RAY_AUTH_MODE",
                   "ray up clusters/aws.yaml", "ray down clusters/aws.yaml", "ray job submit",
                   "kubectl apply -f clusters/kuberay/rayjob.yaml",
                   "kubectl apply -f clusters/kuberay/raycluster.yaml", "-f clusters/Dockerfile"):
        assert needle in text, f"clusters/README.md does not mention `{needle}`"


# --- clusters/local.sh ----------------------------------------------------------------------------


def run_local(*args: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run local.sh with a stub `ray` that logs its arguments (and RAY_AUTH_MODE) instead of
    starting anything."""
    log = tmp_path / "ray-calls.log"
    stub = tmp_path / "ray"
    stub.write_text('#!/usr/bin/env bash\necho "$RAY_AUTH_MODE $OMP_NUM_THREADS $*" >> "$STUB_LOG"\n')
    stub.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NTPT_", "RAY_", "OMP_"))}
    result = subprocess.run(["bash", str(LOCAL_SH), *args], check=False, capture_output=True, text=True,
                            timeout=30, env={**base, "NTPT_RAY": str(stub), "STUB_LOG": str(log), **env})
    return result, log.read_text().splitlines() if log.exists() else []


def test_local_sh_is_executable_and_parses():
    assert os.access(LOCAL_SH, os.X_OK), "clusters/local.sh is not executable"
    check = subprocess.run(["bash", "-n", str(LOCAL_SH)], check=False, capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stderr
    assert LOCAL_SH.read_text().startswith("#!"), "no shebang"
    assert "set -euo pipefail" in LOCAL_SH.read_text()


def test_local_sh_without_arguments_prints_usage_and_starts_nothing(tmp_path):
    # Plain `bash clusters/local.sh`, as a user would type it, with the real PATH.
    plain = subprocess.run(["bash", str(LOCAL_SH)], check=False, capture_output=True, text=True, timeout=30,
                           cwd=ROOT)
    assert plain.returncode != 0
    assert "usage" in (plain.stdout + plain.stderr).lower()
    for args in ((), ("bogus",), ("up", "extra")):
        result, calls = run_local(*args, tmp_path=tmp_path)
        assert result.returncode != 0, args
        assert "usage" in result.stderr.lower(), args
        assert calls == [], f"{args}: ray was called: {calls}"


def test_local_sh_refuses_more_cpus_than_the_machine_has(tmp_path):
    have = len(os.sched_getaffinity(0))
    result, calls = run_local("up", tmp_path=tmp_path, NTPT_WORKERS="1", NTPT_CPUS_PER_NODE=str(have))
    assert result.returncode != 0
    assert "CPUs" in result.stderr
    assert calls == []
    result, calls = run_local("up", tmp_path=tmp_path, NTPT_WORKERS="two")
    assert result.returncode != 0 and calls == []


def test_local_sh_up_status_down_run_the_documented_ray_commands(tmp_path):
    workers = 1 if len(os.sched_getaffinity(0)) >= 2 else 0
    result, calls = run_local("up", tmp_path=tmp_path, NTPT_HEAD_PORT="26399", NTPT_WORKERS=str(workers),
                              NTPT_CPUS_PER_NODE="1")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1 + workers
    head = calls[0].split()
    assert head[:2] == ["disabled", "1"], "RAY_AUTH_MODE=disabled and OMP_NUM_THREADS=1 must be exported"
    assert head[2:4] == ["start", "--head"]
    assert option(head, "--node-ip-address") == "127.0.0.1"
    assert option(head, "--port") == "26399" and option(head, "--num-cpus") == "1"
    assert "--include-dashboard=false" in head
    for call in calls[1:]:
        words = call.split()
        assert words[:3] == ["disabled", "1", "start"] and "--head" not in words
        assert option(words, "--address") == "127.0.0.1:26399" and option(words, "--num-cpus") == "1"
    assert "RAY_AUTH_MODE=disabled" in result.stdout and "--address 127.0.0.1:26399" in result.stdout

    # A caller's RAY_AUTH_MODE is kept, not overridden.
    (tmp_path / "ray-calls.log").unlink()
    _, calls = run_local("up", tmp_path=tmp_path, NTPT_WORKERS="0", NTPT_CPUS_PER_NODE="1",
                         RAY_AUTH_MODE="token")
    assert calls and calls[0].split()[0] == "token"

    (tmp_path / "ray-calls.log").unlink()
    result, calls = run_local("status", tmp_path=tmp_path, NTPT_HEAD_PORT="26399")
    assert result.returncode == 0 and calls == ["disabled 1 status --address 127.0.0.1:26399"]
    (tmp_path / "ray-calls.log").unlink()
    result, calls = run_local("down", tmp_path=tmp_path)
    assert result.returncode == 0 and calls == ["disabled 1 stop --force"]
