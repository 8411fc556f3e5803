"""Several hosts from berth.toml, reached through ~/.ssh/config-style aliases; a mixed v2/v1 fleet."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sandbox.conftest import Server


def test_deploy_to_two_hosts_by_ssh_config_aliases_with_compose_v2_and_v1(app, sandbox, tmp_path):
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("".join(
        f"Host h{h.index}\n  HostName {h.address}\n  User {h.user}\n  IdentityFile {sandbox.key}\n"
        f"  UserKnownHostsFile {sandbox.known_hosts}\n"
        for h in sandbox.hosts
    ))
    (app.dir / ".env").unlink()  # everything comes from berth.toml and the ssh config
    app.commit("berth.toml", **{"berth.toml": f'''
[defaults]
ssh_config = "{ssh_config}"
app_dir = "~/{app.name}"
# a localhost URL is fetched on each server itself
health_urls = ["http://localhost:{app.port}/health"]

[environments.staging]
hosts = ["h1", "h2"]
'''})
    servers = [Server(h) for h in sandbox.hosts[:2]]
    logins = [s.ssh_logins() for s in servers]
    try:
        result = app.berth("deploy", "--push", "--json")
        outcome = json.loads(result.stdout)
        assert result.returncode == 0 and outcome["ok"], result.stdout + result.stderr
        assert [h["host"] for h in outcome["hosts"]] == ["h1", "h2"]
        connects = [s["detail"] for s in outcome["steps"] if s["step"] == "connect"]
        assert "compose v2" in connects[0] and "compose v1" in connects[1]
        commit = app.git("rev-parse", "HEAD")
        for server, before in zip(servers, logins):
            assert server.ssh_logins() == before + 1
            containers = server.containers(app.name)
            assert set(containers) == {"web", "worker"}
            current = json.loads((server.home() / ".berth" / app.name / "current.json").read_text())
            assert current["commit"] == commit and current["host"] == f"h{server.host.index}"
            assert (Path(server.host.dir) / "home" / app.name / ".env.docker").exists()

        status = app.berth("status", "--json")
        rows = json.loads(status.stdout)
        assert status.returncode == 0, status.stdout + status.stderr
        assert [r["host"] for r in rows] == ["h1", "h2"] and all(r["healthy"] for r in rows)
        text = app.berth("status").stdout
        assert text.splitlines()[0] == f"fleet: all 2 hosts run {commit[:7]}", text

        # doctor goes through the same ssh config aliases, one report per host; h2 has only Compose v1
        doctor = json.loads(app.berth("doctor", "--json").stdout)
        assert [r["host"] for r in doctor] == ["h1", "h2"]
        for row, variant in zip(doctor, ("ok", "warn")):
            checks = {c["id"]: c for c in row["checks"]}
            assert checks["docker.compose"]["status"] == variant, checks["docker.compose"]
            assert checks["health.url"]["status"] == "ok" and checks["service.env"]["status"] == "ok"
            assert {c["summary"].split()[0] for c in row["checks"] if c["id"] == "service.running"} == {"web", "worker"}
    finally:
        ids = servers[1].docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={app.name}").split()
        if ids:
            servers[1].docker("rm", "-f", *ids, check=False)
        nets = servers[1].docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={app.name}").split()
        if nets:
            servers[1].docker("network", "rm", *nets, check=False)
