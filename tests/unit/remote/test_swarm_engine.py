"""What swarm's output means to berth (berth.remote.engines.swarm): services, tasks, convergence."""

from __future__ import annotations

import io
import json
import tarfile

from berth.remote.engines import swarm

SERVICES = "\n".join(json.dumps(s) for s in [
    {"ID": "s1", "Spec": {"Name": "app_web", "Mode": {"Replicated": {"Replicas": 3}},
                          "TaskTemplate": {"ContainerSpec": {"Image": "app-web:berth-new@sha256:abc"}}},
     "UpdateStatus": {"State": "completed"}},
    {"ID": "s2", "Spec": {"Name": "app_worker", "Mode": {"Global": {}},
                          "TaskTemplate": {"ContainerSpec": {"Image": "app-worker:berth-new"}}}},
])


def task(service, node, state="running", image="app-web:berth-new", desired="running", err=""):
    return json.dumps({"ServiceID": service, "NodeID": node, "DesiredState": desired,
                       "Status": {"State": state, "Err": err}, "Spec": {"ContainerSpec": {"Image": image}}})


def test_services_and_tasks_are_read_by_name_image_and_node():
    services = swarm.parse_services(SERVICES, "app")
    assert [(s.name, s.image, s.replicas, s.update) for s in services] == [
        ("web", "app-web:berth-new", 3, "completed"), ("worker", "app-worker:berth-new", None, "")]
    tasks = swarm.parse_tasks(task("s1", "n1") + "\nnot json\n" + task("s2", "n2", image="app-worker:berth-new"),
                              services)
    assert [(t.service, t.node, t.running) for t in tasks] == [("web", "n1", True), ("worker", "n2", True)]


def test_converged_only_when_every_replica_runs_the_new_image():
    services = swarm.parse_services(SERVICES, "app")
    images = {"web": "app-web:berth-new", "worker": "app-worker:berth-new"}
    worker = task("s2", "n1", image="app-worker:berth-new")
    two = swarm.parse_tasks("\n".join([task("s1", "n1"), task("s1", "n2"), task("s1", "n3", state="starting"),
                                       worker]), services)
    state = swarm.convergence(services, two, images)
    assert not state.done and state.waiting == ["web: 2 of 3 tasks running"]
    three = swarm.parse_tasks("\n".join([task("s1", "n1"), task("s1", "n2"), task("s1", "n3"), worker]), services)
    assert swarm.convergence(services, three, images).done
    old = swarm.parse_tasks("\n".join([task("s1", n, image="app-web:berth-old") for n in ("n1", "n2", "n3")]
                                      + [worker]), services)
    assert not swarm.convergence(services, old, images).done


def test_a_service_swarm_rolled_back_is_given_up_with_its_failing_tasks():
    rolled = SERVICES.replace('"completed"', '"rollback_completed", "Message": "update rolled back due to failure"')
    services = swarm.parse_services(rolled, "app")
    tasks = swarm.parse_tasks(task("s1", "n1abcdefabcdef99", state="failed", err="task: non-zero exit (1)"), services)
    state = swarm.convergence(services, tasks, {"web": "app-web:berth-new"})
    assert not state.done
    assert state.gave_up == ["web: rollback_completed (update rolled back due to failure)"]


def test_the_release_archive_holds_each_file_0600():
    data = swarm.release_archive({"stack.yml": b"version: '3.8'\n", "web.env": b"KEY=v\n"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {m.name: (m.mode, tar.extractfile(m).read()) for m in tar} == {
            "stack.yml": (0o600, b"version: '3.8'\n"), "web.env": (0o600, b"KEY=v\n")}


def test_node_state_of_a_manager_and_of_an_engine_outside_a_swarm():
    assert swarm.parse_node_state("active true abc123\n") == ("active", True, "abc123")
    assert swarm.parse_node_state("inactive false \n") == ("inactive", False, "")


def test_write_release_puts_the_files_in_the_release_directory_readable_by_the_owner_only(tmp_path):
    import os
    import subprocess

    state = tmp_path / "state"
    archive = swarm.release_archive({"stack.yml": b"version: '3.8'\n", "web.env": b"SECRET=x\n"})
    for _ in range(2):  # a second write replaces the first whole
        proc = subprocess.run(["sh", "-c", swarm.write_release(str(state), "R1")], input=archive, capture_output=True)
        assert proc.returncode == 0, proc.stderr
    d = state / "releases" / "R1.stack"
    assert sorted(p.name for p in d.iterdir()) == ["stack.yml", "web.env"]
    assert (d / "web.env").read_bytes() == b"SECRET=x\n" and os.stat(d / "web.env").st_mode & 0o077 == 0
    assert not (state / "releases" / "R1.stack.tmp").exists()


def test_status_of_a_stack_says_how_many_replicas_run_on_how_many_nodes():
    from types import SimpleNamespace

    from berth.ops.status import render_status, swarm_row

    services = swarm.parse_services(SERVICES, "app")
    tasks = swarm.parse_tasks("\n".join([task("s1", "n1"), task("s1", "n2"), task("s1", "n3", state="starting"),
                                         task("s2", "n1", image="app-worker:berth-new")]), services)
    current = {"id": "R1", "commit": "a" * 40, "result": "ok", "subject": "x"}
    row = swarm_row(SimpleNamespace(environment="prod"), "h1", "/srv/app", current, [current], services, tasks,
                    "a" * 40, None, [])
    assert [(s["service"], s["description"], s["ready"]) for s in row["services"]] == [
        ("web", "2/3 tasks on 2 nodes", False), ("worker", "1/global tasks on 1 node", True)]
    assert not row["healthy"] and row["running"]["id"] == "R1"
    assert "✗ web" in render_status([row])


def test_doctor_of_a_stack_names_down_nodes_and_the_services_that_do_not_run_with_their_task_errors():
    from berth.ops import doctor

    nodes = "\n".join(json.dumps(n) for n in [
        {"ID": "n1 *", "Status": "Ready", "Availability": "Active", "ManagerStatus": "Leader"},
        {"ID": "n2", "Status": "Down", "Availability": "Active", "ManagerStatus": ""}])
    rolled = SERVICES.replace('"completed"', '"rollback_completed"')
    answers = {"docker info": "active true n1", "docker node ls": nodes, "docker service ls": rolled,
               "docker stack ps": task("s1", "n2", state="failed", err="task: non-zero exit (1)")}

    def probe(command: str) -> str:
        return next(out for start, out in answers.items() if start in command)

    found = {(f.id, f.status, f.summary) for f in doctor.check_swarm(probe, "app")}
    assert ("swarm.nodes", "warn", "1 of 2 nodes ready and active") in found
    assert ("swarm.service", "fail", "web: rollback_completed") in found
    web = next(f for f in doctor.check_swarm(probe, "app") if f.summary.startswith("web"))
    assert web.cause == "task: non-zero exit (1)"


def test_status_of_a_stack_names_a_built_image_by_the_tag_berth_gave_it():
    from types import SimpleNamespace

    from berth.ops.status import swarm_row

    by_id = SERVICES.replace("app-web:berth-new@sha256:abc", "sha256:" + "1" * 64)
    services = swarm.parse_services(by_id, "app")
    current = {"id": "R1", "commit": "a" * 40, "result": "ok",
               "images": {"web": {"name": "app-web:berth-aaaaaaaaaaaa", "id": "sha256:" + "1" * 64}}}
    row = swarm_row(SimpleNamespace(environment="prod"), "h1", "/srv/app", current, [current], services, [],
                    None, None, [])
    assert [s["container"] for s in row["services"]] == ["app-web:berth-aaaaaaaaaaaa", "app-worker:berth-new"]
