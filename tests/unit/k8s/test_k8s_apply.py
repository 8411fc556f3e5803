"""`berth k8s apply` / `rollback` against a fake `kubectl` early on PATH that records its argv and stdin.

No cluster is reachable here: these tests pin the exact kubectl invocations and what goes to their
stdin, and prove that no secret value is ever on a command line, in berth's output, or in a file
written to disk. Live behaviour is verified only against a real cluster (docs/KUBERNETES.md).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from berth.remote.engines.kubernetes import Invocation, Kubectl, parse_release, parse_workloads
from tests.helpers import run_berth

ROOT = Path(__file__).resolve().parents[3]

SECRET_KEY = "sk-k8s-test-secret-0123456789"
DB_PASSWORD = "pw-in-url-abcdefgh"
OPENAI = "sk-openai-fake-zyxwvut987"
SECRETS = (SECRET_KEY, DB_PASSWORD, OPENAI)
ENV_DOCKER = (f"APP_ENV=production\nWEB_PORT=8080\nSECRET_KEY={SECRET_KEY}\n"
              f"DATABASE_URL=postgres://app:{DB_PASSWORD}@db:5432/app\nOPENAI_API_KEY={OPENAI}\nGREETING=hi\n")

FAKE_KUBECTL = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
data = sys.stdin.buffer.read()
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "stdin": data.decode("utf-8", "replace")}}) + "\\n")
words = [a for a in args if not a.startswith("--")]
def text(name):
    p = os.environ.get(name)
    return open(p).read() if p and os.path.exists(p) else ""
if words[:2] == ["config", "current-context"]:
    print("fake-current-context")
elif words[:1] == ["apply"]:
    for line in data.decode().splitlines():
        if line.startswith("kind: "):
            print(line[6:].lower() + "/x serverside-applied")
elif words[:2] == ["rollout", "status"]:
    if os.environ.get("FAKE_FAIL_ROLLOUT"):
        sys.stderr.write("error: timed out waiting for the condition\\n")
        sys.exit(1)
    print("successfully rolled out")
elif words[:2] == ["rollout", "undo"]:
    print(words[2] + " rolled back")
elif words[:2] == ["get", "configmap"]:
    sys.stdout.write(text("FAKE_RELEASE"))
elif words[:2] == ["get", "deployments,statefulsets"]:
    sys.stdout.write(text("FAKE_WORKLOADS"))
elif words[:1] == ["logs"]:
    sys.stdout.write(text("FAKE_LOGS"))
else:
    sys.stderr.write("fake kubectl: unexpected " + " ".join(args) + "\\n")
    sys.exit(3)
"""


def workloads_json(ready: bool = True) -> str:
    def item(kind, name):
        status = {"observedGeneration": 2, "readyReplicas": 1 if ready else 0, "updatedReplicas": 1,
                  "availableReplicas": 1 if ready else 0, "currentRevision": "r1", "updateRevision": "r1"}
        return {"kind": kind, "metadata": {"name": name, "generation": 2}, "spec": {"replicas": 1}, "status": status}
    return json.dumps({"kind": "List", "items": [item("Deployment", "web"), item("StatefulSet", "worker")]})


class Harness:
    def __init__(self, tmp_path: Path, environment: str = "staging", context: str | None = "staging-cluster"):
        self.tmp = tmp_path
        self.root = tmp_path / "app"
        shutil.copytree(ROOT / "examples" / "app", self.root)
        (self.root / ".env.docker").write_text(ENV_DOCKER)
        (self.root / ".env").write_text(f"ENVIRONMENT={environment}\n")
        toml = "[kubernetes]\nregistry = \"registry.example.com/app\"\n"
        if context:
            toml += f"context = \"{context}\"\n"
        toml += "[kubernetes.services.web]\nrun_as_user = 1000\nready_path = \"/ready\"\n" \
                "[kubernetes.services.worker]\nrun_as_user = 1000\n"
        (self.root / "berth.toml").write_text(toml)
        self.bin = tmp_path / "fakebin"
        self.bin.mkdir()
        kubectl = self.bin / "kubectl"
        kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
        kubectl.chmod(0o755)
        self.log = tmp_path / "kubectl-calls.jsonl"
        self.state = tmp_path / "state"
        self.state.mkdir()
        (self.state / "workloads.json").write_text(workloads_json())
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.tmpdir = tmp_path / "tmpdir"
        self.tmpdir.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBE"))},
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.home), "TMPDIR": str(self.tmpdir), "NO_COLOR": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
            "FAKE_KUBECTL_LOG": str(self.log),
            "FAKE_WORKLOADS": str(self.state / "workloads.json"),
            "FAKE_RELEASE": str(self.state / "release.json"),
            "FAKE_LOGS": str(self.state / "logs.txt"),
        }

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        if self.log.exists():
            self.log.unlink()
        return run_berth("-C", str(self.root), *args, env={**self.env, **extra_env}, cwd=self.root)

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def files(self) -> dict[Path, float]:
        return {p: p.stat().st_mtime_ns for p in self.tmp.rglob("*") if p.is_file()}


def _no_secret_anywhere_but_stdin(h: Harness, proc, before: dict[Path, float]) -> None:
    forms = [*SECRETS, *(base64.b64encode(s.encode()).decode() for s in SECRETS)]
    for call in h.calls():
        for word in call["argv"]:
            for s in forms:
                assert s not in word, f"secret on kubectl's command line: {call['argv']}"
    for s in forms:
        assert s not in proc.stdout and s not in proc.stderr
    for path, mtime in h.files().items():
        if path == h.log or before.get(path) == mtime:
            continue  # the fake's own recording, and files that were there before (.env.docker holds them)
        data = path.read_bytes()
        for s in forms:
            assert s.encode() not in data, f"secret written to {path}"


def _secret_from_stdin(stdin: str, name: str) -> dict[str, str]:
    for doc in yaml.safe_load_all(stdin):
        if doc and doc["kind"] == "Secret" and doc["metadata"]["name"] == name:
            return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
    raise AssertionError(f"no Secret {name} on stdin")


K = ["kubectl", "--context=staging-cluster", "--namespace=app-staging"]


def test_apply_invocations_and_secrets_only_on_stdin(tmp_path):
    h = Harness(tmp_path)
    before = h.files()
    proc = h.run("k8s", "apply", "--tag", "v1.2.3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = h.calls()
    assert [c["argv"] for c in calls] == [
        [*K[1:], "get", "configmap", "berth-release", "--ignore-not-found", "--output=json"],
        [*K[1:], "apply", "--server-side", "--field-manager=berth", "--filename=-"],
        [*K[1:], "apply", "--server-side", "--field-manager=berth", "--dry-run=server", "--filename=-"],
        [*K[1:], "apply", "--server-side", "--field-manager=berth", "--filename=-"],
        [*K[1:], "rollout", "status", "deployment/web", "--watch=true", "--timeout=300s"],
        [*K[1:], "rollout", "status", "statefulset/worker", "--watch=true", "--timeout=300s"],
        [*K[1:], "get", "deployments,statefulsets",
         "--selector=app.kubernetes.io/instance=app-staging,app.kubernetes.io/managed-by=berth", "--output=json"],
    ]
    namespace_only, dry_run, real = calls[1]["stdin"], calls[2]["stdin"], calls[3]["stdin"]
    assert [d["kind"] for d in yaml.safe_load_all(namespace_only) if d] == ["Namespace"]
    assert dry_run == real
    kinds = [d["kind"] for d in yaml.safe_load_all(real) if d]
    assert kinds.index("Secret") < kinds.index("Deployment") and kinds[-1] == "ConfigMap"
    web = _secret_from_stdin(real, "web-secrets")
    assert web == {"DATABASE_URL": f"postgres://app:{DB_PASSWORD}@db:5432/app", "OPENAI_API_KEY": OPENAI,
                   "SECRET_KEY": SECRET_KEY}
    for call in calls:
        if "apply" not in call["argv"] or call is calls[1]:
            assert SECRET_KEY not in call["stdin"] and base64.b64encode(SECRET_KEY.encode()).decode() not in call["stdin"]
    _no_secret_anywhere_but_stdin(h, proc, before)
    release = [d for d in yaml.safe_load_all(real) if d and d["metadata"]["name"] == "berth-release"][0]
    record = json.loads(release["data"]["release.json"])
    assert record["changed"] == ["Deployment/web", "StatefulSet/worker"]
    assert record["images"]["Deployment/web"] == "registry.example.com/app/web:v1.2.3"
    for s in SECRETS:
        assert s not in release["data"]["release.json"]
    for step in ("render", "check", "context", "release", "namespace", "dry-run", "apply", "rollout", "verify"):
        assert f"✓ {step}" in proc.stdout
    assert "staging-cluster ← berth.toml [kubernetes]" in proc.stdout


def test_apply_with_verbose_shows_commands_but_no_secret(tmp_path):
    h = Harness(tmp_path)
    before = h.files()
    proc = h.run("-v", "k8s", "apply", "--tag", "v1")
    assert proc.returncode == 0, proc.stderr
    assert "--filename=- < (manifests on stdin)" in proc.stdout
    _no_secret_anywhere_but_stdin(h, proc, before)


def test_apply_without_context_uses_kubectls_current_one(tmp_path):
    h = Harness(tmp_path, context=None)
    proc = h.run("k8s", "apply", "--tag", "v1")
    assert proc.returncode == 0, proc.stderr
    argvs = [c["argv"] for c in h.calls()]
    assert argvs[0] == ["config", "current-context"]
    assert argvs[1][:1] == ["--namespace=app-staging"]
    assert "fake-current-context ← kubectl's current context" in proc.stdout


def test_production_asks_and_refuses_without_a_terminal(tmp_path):
    h = Harness(tmp_path, environment="production", context="prod")
    proc = h.run("k8s", "apply", "--tag", "v1")
    assert proc.returncode == 1
    assert "needs confirmation, and there is no terminal" in proc.stderr and "--yes" in proc.stderr
    assert not [c for c in h.calls() if "apply" in c["argv"]]
    proc = h.run("k8s", "apply", "--tag", "v1", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "✓ confirm" in proc.stdout and "--yes given" in proc.stdout
    proc = h.run("k8s", "rollback", "--service", "web")
    assert proc.returncode == 1 and "needs confirmation" in proc.stderr
    assert not [c for c in h.calls() if "undo" in c["argv"]]


def test_check_errors_stop_before_any_kubectl_call(tmp_path):
    h = Harness(tmp_path)
    compose = h.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("    init: true\n", "    init: true\n    privileged: true\n", 1))
    proc = h.run("k8s", "apply", "--tag", "v1")
    assert proc.returncode == 1
    assert "nothing was sent to the cluster" in proc.stderr and "[k8s.privileged]" in proc.stdout
    assert h.calls() == []


def test_failed_rollout_shows_masked_logs_and_points_at_rollback(tmp_path):
    h = Harness(tmp_path)
    (h.state / "logs.txt").write_text(f"[pod/web-1/web] connecting with {DB_PASSWORD}\n[pod/web-1/web] boom\n")
    proc = h.run("k8s", "apply", "--tag", "v1", FAKE_FAIL_ROLLOUT="1")
    assert proc.returncode == 1
    assert "deployment/web did not become ready within 300s" in proc.stderr
    assert "berth k8s rollback -e staging" in proc.stderr
    assert "boom" in proc.stderr and DB_PASSWORD not in proc.stderr and "****" in proc.stderr
    assert h.calls()[-1]["argv"] == [*K[1:], "logs", "deployment/web", "--all-containers=true", "--prefix=true",
                                     "--tail=30"]


def test_verify_fails_when_pods_are_not_ready(tmp_path):
    h = Harness(tmp_path)
    (h.state / "workloads.json").write_text(workloads_json(ready=False))
    proc = h.run("k8s", "apply", "--tag", "v1", "--timeout", "20")
    assert proc.returncode == 1
    assert "verify failed: deployment/web 0/1 NOT ready" in proc.stderr
    assert [*K[1:], "rollout", "status", "deployment/web", "--watch=true", "--timeout=20s"] in [c["argv"] for c in h.calls()]


def _record_release(h: Harness) -> None:
    """Make the fake cluster return the release record the last apply sent."""
    real = [c for c in h.calls() if "apply" in c["argv"] and "--dry-run=server" not in c["argv"]][-1]["stdin"]
    cm = [d for d in yaml.safe_load_all(real) if d and d["metadata"]["name"] == "berth-release"][0]
    (h.state / "release.json").write_text(json.dumps(cm))


def test_rollback_undoes_exactly_what_the_last_apply_changed(tmp_path):
    h = Harness(tmp_path)
    assert h.run("k8s", "apply", "--tag", "v1").returncode == 0
    _record_release(h)
    compose = h.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("      interval: 1s\n", "      interval: 5s\n", 1))  # web only
    proc = h.run("k8s", "apply", "--tag", "v1")
    assert proc.returncode == 0, proc.stderr
    assert "changes Deployment/web" in proc.stdout and "StatefulSet/worker" not in proc.stdout.split("changes")[1].split("\n")[0]
    _record_release(h)
    before = h.files()
    proc = h.run("k8s", "rollback")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    argvs = [c["argv"] for c in h.calls()]
    assert argvs == [
        [*K[1:], "get", "configmap", "berth-release", "--ignore-not-found", "--output=json"],
        [*K[1:], "rollout", "undo", "deployment/web"],
        [*K[1:], "rollout", "status", "deployment/web", "--watch=true", "--timeout=300s"],
        [*K[1:], "get", "deployments,statefulsets",
         "--selector=app.kubernetes.io/instance=app-staging,app.kubernetes.io/managed-by=berth", "--output=json"],
        [*K[1:], "apply", "--server-side", "--field-manager=berth", "--filename=-"],
    ]
    record = json.loads(yaml.safe_load(h.calls()[-1]["stdin"])["data"]["release.json"])
    assert record["changed"] == [] and record["rolled_back"]["workloads"] == ["Deployment/web"]
    assert "Deployment/web" not in record["workloads"] and "StatefulSet/worker" in record["workloads"]
    assert "rolled back Deployment/web in staging" in proc.stdout
    _no_secret_anywhere_but_stdin(h, proc, before)
    # the record now says nothing is left to undo
    _record_release(h)
    proc = h.run("k8s", "rollback")
    assert proc.returncode == 1 and "changed no workload" in proc.stderr


def test_rollback_to_a_revision_of_named_services(tmp_path):
    h = Harness(tmp_path)
    proc = h.run("k8s", "rollback", "--service", "worker", "--to-revision", "3")
    assert proc.returncode == 0, proc.stderr
    assert [*K[1:], "rollout", "undo", "statefulset/worker", "--to-revision=3"] in [c["argv"] for c in h.calls()]


def test_rollback_without_a_record_needs_service(tmp_path):
    h = Harness(tmp_path)
    proc = h.run("k8s", "rollback")
    assert proc.returncode == 1 and "has no berth release record" in proc.stderr and "--service" in proc.stderr
    assert not [c for c in h.calls() if "undo" in c["argv"]]
    proc = h.run("k8s", "rollback", "--service", "nope")
    assert proc.returncode == 2 and "no workload for service nope" in proc.stderr


def test_kubectl_missing_is_a_clear_error(tmp_path):
    h = Harness(tmp_path)
    (h.bin / "kubectl").unlink()
    proc = h.run("k8s", "apply", "--tag", "v1", PATH=str(h.bin))
    assert proc.returncode == 1 and "kubectl is not installed" in proc.stderr


def test_apply_needs_the_env_file(tmp_path):
    h = Harness(tmp_path)
    (h.root / ".env.docker").unlink()
    proc = h.run("k8s", "apply", "--tag", "v1")
    assert proc.returncode == 2 and ".env.docker does not exist; the Secrets are built from it" in proc.stderr
    assert h.calls() == []


def test_json_output(tmp_path):
    h = Harness(tmp_path)
    proc = h.run("k8s", "apply", "--tag", "v1", "--json")
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["namespace"] == "app-staging" and data["context"] == "staging-cluster"
    assert data["kubectl"][1].endswith("--filename=- < (manifests on stdin)")


# --------------------------------------------------------------------------- the engine, as data


def test_kubectl_argv_are_pure_data():
    k = Kubectl("ns", context="ctx", kubeconfig="/k/config")
    inv = k.apply(b"---\nkind: Secret\n", dry_run=True)
    assert inv.argv == ("kubectl", "--kubeconfig=/k/config", "--context=ctx", "--namespace=ns", "apply",
                        "--server-side", "--field-manager=berth", "--dry-run=server", "--filename=-")
    assert inv.stdin == b"---\nkind: Secret\n"
    assert "Secret" not in inv.describe() and inv.describe().endswith("< (manifests on stdin)")
    assert Kubectl("ns").current_context().argv == ("kubectl", "config", "current-context")
    assert k.rollout_status("StatefulSet", "db", 60).timeout == 90
    assert k.rollout_undo("Deployment", "web").argv[-3:] == ("rollout", "undo", "deployment/web")
    assert isinstance(inv, Invocation)


def test_parse_workloads():
    statuses = parse_workloads(workloads_json())
    assert [(s.kind, s.name, s.ok) for s in statuses] == [("Deployment", "web", True), ("StatefulSet", "worker", True)]
    stale = json.loads(workloads_json())
    stale["items"][0]["metadata"]["generation"] = 3  # the controller has not seen the newest spec yet
    stale["items"][1]["status"]["updateRevision"] = "r2"  # pods still run the old revision
    assert [s.ok for s in parse_workloads(json.dumps(stale))] == [False, False]
    assert parse_release("") is None
    assert parse_release(json.dumps({"data": {"release.json": '{"id": "x"}'}})) == {"id": "x"}


@pytest.mark.parametrize("cmd", [["apply"], ["rollback"], ["render"], ["check"]])
def test_bad_berth_toml_is_a_usage_error(tmp_path, cmd):
    h = Harness(tmp_path)
    (h.root / "berth.toml").write_text("[kubernetes]\nnamespace = 3\n")
    proc = h.run("k8s", *cmd)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: berth.toml: 'namespace' in [kubernetes] must be a string")
    assert h.calls() == []
