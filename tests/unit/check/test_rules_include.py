"""`include:` in berth check: the included files are read as compose reads them (their own directory and .env),
their services are checked like the project's, and what compose refuses about an include is an error at its line."""

from __future__ import annotations

from berth.check import run_checks
from berth.configuration.target import load_target

SERVICE = "    image: nginx:1.25\n    restart: unless-stopped\n"
HEALTHY = ('    healthcheck:\n      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]\n')


def findings(project, compose: str, **files: str):
    for rel, text in files.items():  # db__compose_yaml → db/compose.yaml, db__env → db/.env
        rel = rel.replace("__", "/").replace("_yaml", ".yaml")
        project.write(rel if not rel.endswith("/env") else rel[:-3] + ".env", text)
    project.write("docker-compose.yml", compose)
    project.git("add", "-A")
    project.commit("include")
    report = run_checks(load_target(project.root), offline=True)
    return [f for f in report.findings if f.rule.startswith(("compose.", "practice."))]


def test_a_service_of_an_included_file_is_checked_at_its_own_line(project):
    found = findings(project, "include:\n  - db/compose.yaml\nservices:\n  web:\n" + SERVICE + HEALTHY,
                     db__compose_yaml="services:\n  db:\n    image: postgres:16\n" + HEALTHY)
    missing = [f for f in found if f.rule == "practice.restart-missing"]
    assert [(f.file.name, f.file.parent.name, f.line) for f in missing] == [("compose.yaml", "db", 2)]


def test_a_variable_an_included_project_sets_in_its_own_env_is_not_unset(project):
    found = findings(project, "include:\n  - db/compose.yaml\nservices:\n  web:\n" + SERVICE + HEALTHY,
                     db__compose_yaml="services:\n  db:\n    image: postgres:${PG_TAG}\n    restart: always\n"
                                      "    environment:\n      OTHER: ${NOT_SET_ANYWHERE}\n" + HEALTHY,
                     db__env="PG_TAG=16\n")
    unset = [f.message for f in found if f.rule == "compose.unset-variable"]
    assert len(unset) == 1 and "NOT_SET_ANYWHERE" in unset[0]


def test_a_missing_included_file_is_an_error_at_the_include(project):
    found = findings(project, "services:\n  web:\n" + SERVICE + HEALTHY + "include:\n  - db/compose.yaml\n")
    errors = [f for f in found if f.rule == "compose.invalid-project"]
    assert len(errors) == 1 and "include: db/compose.yaml does not exist" in errors[0].message
    assert (errors[0].file.name, errors[0].line) == ("docker-compose.yml", 8)  # the entry


def test_a_service_the_project_and_an_included_file_both_define_is_an_error(project):
    found = findings(project, "include:\n  - db/compose.yaml\nservices:\n  db:\n" + SERVICE + HEALTHY,
                     db__compose_yaml="services:\n  db:\n    image: postgres:16\n    restart: always\n" + HEALTHY)
    errors = [f for f in found if f.rule == "compose.invalid-project"]
    assert [e.message.split(":")[0] for e in errors] == ["services.db conflicts with imported resource"]
    assert (errors[0].file.parent.name, errors[0].line) == ("db", 2)


def test_an_included_project_that_declares_its_volume_is_sound(project):
    found = findings(project, "include:\n  - db/compose.yaml\nservices:\n  web:\n" + SERVICE + HEALTHY
                     + "    depends_on: [db]\n",
                     db__compose_yaml="services:\n  db:\n    image: postgres:16\n    restart: always\n"
                                      "    volumes: [pgdata:/var/lib/postgresql/data]\n" + HEALTHY
                                      + "volumes:\n  pgdata: {}\n")
    assert [f for f in found if f.rule == "compose.invalid-project"] == []
    undeclared = findings(project, "include:\n  - db/compose.yaml\nservices:\n  web:\n" + SERVICE + HEALTHY,
                          db__compose_yaml="services:\n  db:\n    image: postgres:16\n    restart: always\n"
                                           "    volumes: [pgdata:/var/lib/postgresql/data]\n" + HEALTHY)
    assert any("pgdata" in f.message for f in undeclared if f.rule == "compose.invalid-project")
