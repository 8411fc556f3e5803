"""A deploy over several hosts, in process: the batches (pure), and the real pipeline against one scripted
host per address — canary, a failure in a later batch, on_failure, a host that cannot be reached, --host."""

from __future__ import annotations

import pytest

from berth.configuration.target import Fleet, Host, load_target
from berth.deploy.fleet import batches
from berth.deploy.pipeline import DeployOptions, run_deploy
from berth.errors import BerthError
from berth.remote.transport.ssh import SSHError
from berth.secrets.masking import Masker
from berth.ui.output import StepPrinter
from tests.unit.deploy.fake_host import FakeHost
from tests.unit.deploy.test_deploy_in_process import new_commit

ADDRESSES = ("203.0.113.5", "203.0.113.6", "203.0.113.7")
LABELS = tuple(f"deploy@{a}" for a in ADDRESSES)
H = tuple(Host(a) for a in ("a", "b", "c", "d", "e"))


def labels(plan) -> list[list[str]]:
    return [[h.address for h in b.hosts] for b in plan]


@pytest.mark.parametrize("fleet, expected", [
    (Fleet(), [["a", "b", "c", "d", "e"]]),
    (Fleet(parallel=2), [["a", "b"], ["c", "d"], ["e"]]),
    (Fleet(percent=40), [["a", "b"], ["c", "d"], ["e"]]),
    (Fleet(percent=10), [["a"], ["b"], ["c"], ["d"], ["e"]]),  # at least one host a batch
    (Fleet(canary="first"), [["a"], ["b", "c", "d", "e"]]),
    (Fleet(canary="c", parallel=3), [["c"], ["a", "b", "d"], ["e"]]),
    (Fleet(canary="z", parallel=3), [["a", "b", "c"], ["d", "e"]]),  # --host left the canary out
])
def test_batches_put_the_canary_alone_first_then_parallel_hosts_at_a_time(fleet, expected):
    plan = batches(H, fleet)
    assert labels(plan) == expected
    assert [b.canary for b in plan] == [fleet.canary in ("first", "c")] + [False] * (len(expected) - 1)


def test_one_host_is_one_batch_even_with_a_canary():
    assert labels(batches(H[:1], Fleet(canary="first"))) == [["a"]]


class Unreachable:
    """A host whose sshd does not answer."""

    def __init__(self, host):
        self.host, self.lost, self.connections_opened, self.calls = host, None, 0, []

    def open(self):
        raise SSHError(f"ssh: connect to host {self.host.address} port 22: Connection refused")

    def close(self):
        pass


def fleet_project(project, **settings) -> dict[str, FakeHost]:
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
    project.write("berth.toml", f"[environments.staging]\nhosts = {list(ADDRESSES)!r}\n{lines}".replace("'", '"'))
    project.commit("fleet")
    project.push()
    return {a: FakeHost() for a in ADDRESSES}


def deploy(project, fakes: dict[str, FakeHost], down=(), hosts=()):
    target = load_target(project.root, None, hosts)
    outcome: dict = {}

    def transport(host):
        return Unreachable(host) if host.address in down else fakes[host.address].transport(host)

    try:
        run_deploy(target, DeployOptions(), StepPrinter(Masker(), quiet=True), outcome, transport=transport)
    except BerthError as exc:
        return outcome, exc
    return outcome, None


def states(outcome) -> list[str]:
    return [h["state"] for h in outcome["hosts"]]


def test_every_host_gets_the_same_commit_and_env_with_one_connection_each(project):
    fakes = fleet_project(project)
    outcome, error = deploy(project, fakes)
    assert error is None, error and error.paragraph()
    assert [h["host"] for h in outcome["hosts"]] == list(LABELS) and states(outcome) == ["deployed"] * 3
    assert outcome["batches"] == [list(LABELS)]
    for fake in fakes.values():
        assert fake.head == project.head() and fake.env == (project.root / ".env.docker").read_bytes()
        assert fake.conn.connections_opened == 1 and fake.events() == ["deploy"] and fake.lock is None
    assert [s["step"] for s in outcome["steps"]].count("check") == 1  # checked once, locally


def test_a_canary_that_fails_verify_stops_the_rollout_before_any_other_host(project):
    fakes = fleet_project(project, canary="true")
    deploy(project, fakes)
    before = {a: (f.head, len(f.history)) for a, f in fakes.items()}
    bad = new_commit(project)
    canary = fakes[ADDRESSES[0]]
    canary.unhealthy, canary.unhealthy_commit = {"web"}, bad
    outcome, error = deploy(project, fakes)
    assert error is not None and error.exit_code == 1
    assert error.what.startswith(f"{LABELS[0]}: verify failed on ")
    assert "the rollout stopped at batch 1 of 2" in error.what
    assert f"({LABELS[1]}, {LABELS[2]} not touched)" in error.what
    assert canary.head == before[ADDRESSES[0]][0]  # rolled back by its own deploy
    assert states(outcome) == ["rolled-back", "not-reached", "not-reached"]
    for a in ADDRESSES[1:]:
        assert (fakes[a].head, len(fakes[a].history)) == before[a]  # never connected to this time


def test_a_failure_in_batch_two_returns_batch_one_to_its_previous_release(project):
    fakes = fleet_project(project, parallel=1)
    deploy(project, fakes)
    first = {a: f.current["id"] for a, f in fakes.items()}
    good_commit = project.head()
    bad = new_commit(project)
    second = fakes[ADDRESSES[1]]
    second.unhealthy, second.unhealthy_commit = {"web"}, bad
    outcome, error = deploy(project, fakes)
    assert error is not None and error.exit_code == 1, error and error.paragraph()
    assert error.what.startswith(f"{LABELS[1]}: verify failed on ")
    assert "the rollout stopped at batch 2 of 3" in error.what
    assert f"{LABELS[0]} went back to its previous release" in error.what
    assert states(outcome) == ["returned", "rolled-back", "not-reached"]
    one = fakes[ADDRESSES[0]]
    assert one.head == good_commit and one.events() == ["deploy", "deploy", "rollback"]
    assert one.history[-1]["kind"] == "rollback" and one.history[-1]["rollback_of"] == first[ADDRESSES[0]]
    assert outcome["hosts"][0]["returned"]["ok"] is True
    assert one.audit[-1]["reason"] == "another host of the rollout failed"
    assert fakes[ADDRESSES[2]].events() == ["deploy"]  # batch 3 never started


def test_on_failure_stop_leaves_the_updated_hosts_on_the_new_release(project):
    fakes = fleet_project(project, parallel=1, on_failure='"stop"')
    deploy(project, fakes)
    bad = new_commit(project)
    fakes[ADDRESSES[1]].unhealthy, fakes[ADDRESSES[1]].unhealthy_commit = {"web"}, bad
    outcome, error = deploy(project, fakes)
    assert error is not None and f"{LABELS[0]} keeps the new release (on_failure = \"stop\")" in error.what
    assert states(outcome) == ["deployed", "rolled-back", "not-reached"]
    assert fakes[ADDRESSES[0]].head == bad


def test_a_host_that_cannot_be_reached_fails_alone(project):
    fakes = fleet_project(project)
    outcome, error = deploy(project, fakes, down={ADDRESSES[1]})
    assert error is not None and error.exit_code == 1
    assert error.what.startswith(f"{LABELS[1]} could not be reached, so it was not deployed")
    assert "Connection refused" in error.what and "the other 2 hosts run the new release" in error.what
    assert error.what.count(ADDRESSES[1]) == 2  # its label, then ssh's own words
    assert f"berth deploy --host {ADDRESSES[1]}" in error.fix
    assert states(outcome) == ["deployed", "unreachable", "deployed"]
    assert fakes[ADDRESSES[0]].head == fakes[ADDRESSES[2]].head == project.head()


def test_an_unreachable_canary_stops_the_rollout(project):
    fakes = fleet_project(project, canary="true")
    outcome, error = deploy(project, fakes, down={ADDRESSES[0]})
    assert error is not None and "the rollout stopped at batch 1 of 2" in error.what
    assert states(outcome) == ["unreachable", "not-reached", "not-reached"]


def test_host_picks_some_of_the_configured_hosts_in_their_order(project):
    fakes = fleet_project(project, canary=f'"{ADDRESSES[0]}"')
    outcome, error = deploy(project, fakes, hosts=(ADDRESSES[2], ADDRESSES[1]))
    assert error is None, error and error.paragraph()
    assert [h["host"] for h in outcome["hosts"]] == [LABELS[1], LABELS[2]]
    assert outcome["batches"] == [[LABELS[1], LABELS[2]]]  # the canary was not named: no canary batch
    assert fakes[ADDRESSES[0]].conn is None  # never connected


# --------------------------------------------------------------------------- roles

ROLES_TOML = f'''[environments.staging]
hosts = {list(ADDRESSES[:2])!r}
canary = "web"

[environments.staging.roles.web]
hosts = ["{ADDRESSES[0]}"]
services = ["web"]

[environments.staging.roles.jobs]
hosts = ["{ADDRESSES[1]}"]
services = ["worker"]
health_urls = []
'''.replace("'", '"')
WORKER = """  worker:
    image: "busybox:${TAG}"
    restart: unless-stopped
"""


def test_roles_give_each_host_its_services_and_a_role_can_be_the_canary(project):
    project.write("docker-compose.yml", project.root.joinpath("docker-compose.yml").read_text() + WORKER)
    project.write("berth.toml", ROLES_TOML)
    project.commit("roles")
    project.push()
    target = load_target(project.root)
    web, jobs = target.hosts
    assert (web.roles, web.services, jobs.roles, jobs.services) == (("web",), ("web",), ("jobs",), ("worker",))
    assert target.health_urls_of(jobs) == () and jobs.health_urls == ()
    assert labels(batches(target.hosts, target.fleet)) == [[ADDRESSES[0]], [ADDRESSES[1]]]  # the web role first
    fakes = {ADDRESSES[0]: FakeHost(services=("web",), only=("web",)),
             ADDRESSES[1]: FakeHost(services=("worker",), only=("worker",))}
    outcome, error = deploy(project, fakes)
    assert error is None, error and error.paragraph()
    assert states(outcome) == ["deployed", "deployed"]
    assert set(fakes[ADDRESSES[0]].containers) == {"web"} and set(fakes[ADDRESSES[1]].containers) == {"worker"}
    assert fakes[ADDRESSES[0]].current["services"] == ["web"] and fakes[ADDRESSES[1]].current["services"] == ["worker"]
    ups = [s for s, _ in fakes[ADDRESSES[1]].conn.calls if " up --detach" in s]
    assert ups and all(s.endswith("up --detach --remove-orphans --no-deps worker") for s in ups)
    # --host names a role: its hosts
    assert [h.address for h in load_target(project.root, None, ("jobs",)).hosts] == [ADDRESSES[1]]


def test_plan_shows_the_batches_the_roles_and_what_a_failure_does(project):
    project.write("docker-compose.yml", project.root.joinpath("docker-compose.yml").read_text() + WORKER)
    project.write("berth.toml", ROLES_TOML.replace('canary = "web"', 'canary = "web"\nbatch_pause = 5'))
    project.commit("roles")
    from berth.deploy.plan import render_plan

    text = render_plan(load_target(project.root))
    assert "then on each of the 2 hosts, in batches (every host of a batch at once):" in text
    assert f"batch 1: {LABELS[0]} (canary: alone, and it must pass verify)" in text
    assert f"batch 2: {LABELS[1]}\n" in text and "a pause of 5s between batches" in text
    assert f"{LABELS[1]} (jobs) runs worker; verify fetches no URL" in text
    assert 'the hosts it updated go back to the release they ran (on_failure = "rollback")' in text



def test_plan_of_a_swarm_environment_shows_the_stack_steps_on_the_manager(project):
    project.write("berth.toml", f'[environments.staging]\nengine = "swarm"\nhosts = {list(ADDRESSES)!r}\n'.replace(
        "'", '"'))
    project.commit("swarm")
    from berth.deploy.plan import render_plan

    text = render_plan(load_target(project.root))
    assert f"then on the swarm manager ({LABELS[0]}, {LABELS[1]}, {LABELS[2]};" in text
    steps = [line.split(". ", 1)[1] for line in text.splitlines() if line[:1].isdigit() and ". " in line]
    assert steps[-10:] == ["connect:", "lock:", "swarm:", "sync:", "env:", "build:", "images:", "stack:",
                           "converge:", "record:"]
    assert "docker stack deploy --prune --resolve-image never --compose-file stack.yml" in text
    assert "preflight" not in text  # not the compose steps


def test_rollback_of_several_hosts_returns_every_one_and_names_each_that_failed(project):
    from berth.deploy.rollback import run_rollback

    fakes = fleet_project(project)
    deploy(project, fakes)
    first = {a: f.current["id"] for a, f in fakes.items()}
    new_commit(project)
    deploy(project, fakes)
    fakes[ADDRESSES[2]].history = [r for r in fakes[ADDRESSES[2]].history if r["id"] != first[ADDRESSES[2]]]
    target = load_target(project.root)
    outcome: dict = {}
    with pytest.raises(BerthError) as info:
        run_rollback(target, None, DeployOptions(), StepPrinter(Masker(), quiet=True), outcome,
                     transport=lambda h: fakes[h.address].transport(h))
    assert info.value.what.startswith(f"{LABELS[2]}: there is no earlier successful release to roll back to")
    assert [h["ok"] for h in outcome["hosts"]] == [True, True, False]
    for a in ADDRESSES[:2]:
        assert fakes[a].current["kind"] == "rollback" and fakes[a].current["rollback_of"] == first[a]
