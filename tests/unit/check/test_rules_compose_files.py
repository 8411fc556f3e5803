"""The compose rules about what reaches the server (berth/check/rules/compose.py), firing and quiet.

The server gets the git checkout and the shipped env file, nothing else: compose.outside-repo (include,
extends.file, build contexts, Dockerfiles, secret and config files), compose.env-file-not-shipped (env_file),
and compose.no-active-service (a file that would start no container at all). CASES is collected by
test_check_rules.test_every_rule_has_a_firing_and_a_quiet_case and run here, with the harness in rule_cases.py.
"""

from __future__ import annotations

from tests.helpers.rule_cases import Case, Project, both, expect_at, rule_test

COMPOSE = "docker-compose.yml"
IMAGE = "    image: nginx:1.25\n    restart: unless-stopped\n"


def pos(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of needle in text."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def compose(text: str, *, outside: dict[str, str] | None = None, inside: dict[str, str] | None = None,
            track: bool = True, app_env: str = ""):
    """A setup: files outside the project (relative to its parent; {ROOT} in text is the project's
    parent), files inside it (git add-ed unless track is False), then the compose file."""
    def setup(p: Project) -> None:
        parent = p.root.parent
        for rel, body in (outside or {}).items():
            (parent / rel).parent.mkdir(parents=True, exist_ok=True)
            (parent / rel).write_text(body)
        for rel, body in (inside or {}).items():
            p.write(rel, body)
            if track:
                p.git("add", "-f", rel)
        p.write(COMPOSE, text.replace("{ROOT}", str(parent)))
        if app_env:
            p.write(".env.docker", p.APP_ENV + app_env)
    return setup


def at(text: str, needle: str, contains: str = "", count: int = 1):
    """The first finding is in the compose file, at needle (the text with {ROOT} as written)."""
    def expect(p: Project, found) -> None:
        real = text.replace("{ROOT}", str(p.root.parent))
        line, col = pos(real, needle.replace("{ROOT}", str(p.root.parent)))
        expect_at(COMPOSE, line, col, contains=contains.replace("{ROOT}", str(p.root.parent)), count=count,
                  fix_required=True)(p, sorted(found, key=lambda f: (f.line, f.col)))
    return expect


BASE = "services:\n  base:\n" + IMAGE

# the review's repro: extends.file with an absolute path outside the repo
EXTENDS_ABSOLUTE = "services:\n  web:\n    extends:\n      file: {ROOT}/shared/base.yml\n      service: base\n"
# ... and an include of a file outside the repo (it defines service worker)
INCLUDE_OUTSIDE = "include:\n  - ../shared/worker.yml\nservices:\n  web:\n" + IMAGE
WORKER = "services:\n  worker:\n" + IMAGE

INCLUDE_LONG = "include:\n  - path:\n      - ./compose.worker.yml\n      - /opt/other.yml\n    env_file: ../x.env\n" \
               "services:\n  web:\n" + IMAGE
BUILD = "services:\n  app:\n    build: {build}\n    restart: unless-stopped\n"
BUILD_LONG = ("services:\n  app:\n    build:\n      context: ./app\n      dockerfile: {dockerfile}\n"
              "      additional_contexts:\n        assets: ../assets\n    restart: unless-stopped\n")
SECRETS = ("services:\n  web:\n" + IMAGE + "    secrets: [db_password]\n    configs: [nginx]\n"
           "secrets:\n  db_password:\n    file: ./secrets/db_password.txt\n"
           "configs:\n  nginx:\n    file: ./nginx.conf\n")
DOCKERFILE = "FROM nginx:1.25\n"


def profiles(*services: tuple[str, str | None]) -> str:
    out = "services:\n"
    for name, profile in services:
        out += f"  {name}:\n" + IMAGE + (f"    profiles: [\"{profile}\"]\n" if profile else "")
    return out


ALL_BEHIND_PROFILES = profiles(("web", "web"), ("worker", "jobs"))
SCALED_TO_ZERO = profiles(("jobs", "jobs"), ("web", None)) + "    deploy:\n      replicas: 0\n"


UNDEFINED_VOLUME = "services:\n  web:\n" + IMAGE + "    volumes:\n      - data:/var/lib/data\n"
UNDEFINED_DEPENDENCY = "services:\n  web:\n" + IMAGE + "    depends_on: [db]\n"
UNDEFINED_NETWORK = "services:\n  web:\n" + IMAGE + "    networks: [backend]\n"
UNDEFINED_SECRET = "services:\n  web:\n" + IMAGE + "    secrets:\n      - source: db_password\n        target: pw\n"
MODE_AND_NETWORKS = ("services:\n  web:\n" + IMAGE + "    network_mode: host\n    networks: [backend]\n"
                     "networks:\n  backend: {}\n")
NOT_A_MAPPING = "services:\n  web: nginx:1.25\n"
TYPO_KEY = "services:\n  web:\n" + IMAGE + "    enviroment:\n      A: \"1\"\n"
TYPO_TOP = "services:\n  web:\n" + IMAGE + "service:\n  db: {}\n"
MEMORY_TWICE = "services:\n  web:\n" + IMAGE + "    mem_limit: 1g\n    deploy:\n      resources:\n        limits:\n" \
               "          memory: 512m\n"
PIDS_BESIDE_LIMITS = "services:\n  web:\n" + IMAGE + "    pids_limit: 100\n    deploy:\n      resources:\n" \
                     "        limits:\n          memory: 512m\n"
NAMED_REPLICAS = "services:\n  web:\n" + IMAGE + "    container_name: web\n    deploy:\n      replicas: 2\n"
NEEDS_DISABLED = "services:\n  optional:\n" + IMAGE + "    profiles: [debug]\n  web:\n" + IMAGE + \
                 "    depends_on: [optional]\n"
SAME_LIMIT_OPTIONAL_DEPENDENCY = ("services:\n  optional:\n" + IMAGE + "    profiles: [debug]\n  web:\n" + IMAGE
                                  + "    mem_limit: 512m\n    deploy:\n      replicas: 1\n      resources:\n"
                                  "        limits:\n          memory: 512M\n    container_name: web\n"
                                  "    depends_on:\n      optional:\n        condition: service_started\n"
                                  "        required: false\n")
ALL_DECLARED = ("services:\n  db:\n" + IMAGE + "  web:\n" + IMAGE + "    depends_on:\n      db:\n"
                "        condition: service_started\n    volumes: [\"data:/d\", \"./conf:/etc/conf:ro\", \"/cache\"]\n"
                "    networks: {backend: {}, default: null}\n    secrets: [db_password]\n"
                "volumes:\n  data: {}\nnetworks:\n  backend: {}\nsecrets:\n  db_password:\n    file: ./pw.txt\n")

CASES: list[Case] = [
    # compose.invalid-project: what docker compose refuses, in its own words
    Case("compose.invalid-project", True, "a named volume the file does not declare", compose(UNDEFINED_VOLUME),
         at(UNDEFINED_VOLUME, "data:/var", contains='service "web" refers to undefined volume data')),
    Case("compose.invalid-project", True, "depends_on a service that does not exist", compose(UNDEFINED_DEPENDENCY),
         at(UNDEFINED_DEPENDENCY, "db]", contains='service "web" depends on undefined service "db"')),
    Case("compose.invalid-project", True, "a network the file does not declare", compose(UNDEFINED_NETWORK),
         at(UNDEFINED_NETWORK, "backend]", contains='service "web" refers to undefined network backend')),
    Case("compose.invalid-project", True, "a secret (long syntax) the file does not declare", compose(UNDEFINED_SECRET),
         at(UNDEFINED_SECRET, "source: db", contains='service "web" refers to undefined secret db_password')),
    Case("compose.invalid-project", True, "network_mode together with networks", compose(MODE_AND_NETWORKS),
         at(MODE_AND_NETWORKS, "network_mode", contains="declares mutually exclusive `network_mode` and `networks`")),
    Case("compose.invalid-project", True, "a service that is not a mapping", compose(NOT_A_MAPPING),
         at(NOT_A_MAPPING, "web", contains="services.web must be a mapping")),
    Case("compose.invalid-project", True, "mem_limit and a different deploy memory limit",
         compose(MEMORY_TWICE), at(MEMORY_TWICE, "mem_limit", contains="services.web: can't set distinct values on "
                                   "'mem_limit' and 'deploy.resources.limits.memory'")),
    Case("compose.invalid-project", True, "pids_limit beside deploy limits that do not set pids",
         compose(PIDS_BESIDE_LIMITS), at(PIDS_BESIDE_LIMITS, "pids_limit", contains="'pids_limit' and "
                                         "'deploy.resources.limits.pids'")),
    Case("compose.invalid-project", True, "container_name on a service with replicas",
         compose(NAMED_REPLICAS), at(NAMED_REPLICAS, "container_name", contains="services.replicas: can't set "
                                     "container_name and web as container name must be unique")),
    Case("compose.invalid-project", True, "depends_on a service whose profile is not enabled",
         compose(NEEDS_DISABLED), at(NEEDS_DISABLED, "optional]", contains='service "web" depends on undefined '
                                     'service "optional": optional has profiles that COMPOSE_PROFILES does not enable')),
    Case("compose.invalid-project", False, "the same limit twice, an optional dependency behind a profile",
         compose(SAME_LIMIT_OPTIONAL_DEPENDENCY)),
    Case("compose.invalid-project", True, "a service key the compose specification does not have",
         compose(TYPO_KEY), lambda p, found: (at(TYPO_KEY, "enviroment", contains="services.web Additional property "
                                                 "enviroment is not allowed")(p, found),
                                              _assert("did you mean environment?" in found[0].fix))),
    Case("compose.invalid-project", True, "a top-level key compose does not know",
         compose(TYPO_TOP), at(TYPO_TOP, "service:", contains="(root) Additional property service is not allowed")),
    Case("compose.invalid-project", False, "extension keys and newer compose keys",
         compose("x-common: {}\nservices:\n  web:\n" + IMAGE + "    x-note: kept\n    gpus: all\n"
                 "    post_start: [{command: [\"true\"]}]\n")),
    Case("compose.invalid-project", False, "every reference declared (bind, anonymous, default network)",
         compose(ALL_DECLARED, inside={"pw.txt": "x\n"})),
    # compose.outside-repo
    Case("compose.outside-repo", True, "extends.file outside the repo (absolute)",
         compose(EXTENDS_ABSOLUTE, outside={"shared/base.yml": BASE}),
         at(EXTENDS_ABSOLUTE, "file:", contains="service web: extends.file {ROOT}/shared/base.yml is outside the "
            "project directory; the server receives only the git checkout plus .env.docker")),
    Case("compose.outside-repo", True, "include outside the repo",
         compose(INCLUDE_OUTSIDE, outside={"shared/worker.yml": WORKER}),
         at(INCLUDE_OUTSIDE, "../shared", contains="include ../shared/worker.yml is outside the project")),
    Case("compose.outside-repo", True, "include as a string, not tracked",
         compose("include: compose.worker.yml\nservices:\n  web:\n" + IMAGE,
                 inside={"compose.worker.yml": WORKER}, track=False),
         at("include: compose.worker.yml\n", "include", contains="is not tracked by git")),
    Case("compose.outside-repo", True, "include long form: each path and its env_file",
         compose(INCLUDE_LONG, inside={"compose.worker.yml": WORKER}),
         lambda p, found: (at(INCLUDE_LONG, "/opt/other.yml", count=2)(p, found),
                           _assert("include env_file ../x.env is outside" in found[1].message))),
    Case("compose.outside-repo", True, "extends.file ../ relative",
         compose("services:\n  web:\n    extends:\n      file: ../base.yml\n      service: base\n",
                 outside={"base.yml": BASE}),
         at("services:\n  web:\n    extends:\n      file: ../base.yml\n", "file:", contains="../base.yml")),
    Case("compose.outside-repo", True, "build context outside",
         compose(BUILD.format(build="../other"), outside={"other/Dockerfile": DOCKERFILE}),
         at(BUILD.format(build="../other"), "build:", contains="service app: build context ../other is outside")),
    Case("compose.outside-repo", True, "build context not tracked",
         compose(BUILD.format(build="./app"), inside={"app/Dockerfile": DOCKERFILE}, track=False),
         at(BUILD.format(build="./app"), "build:", contains="build context ./app is not tracked by git")),
    Case("compose.outside-repo", True, "build.dockerfile absolute, additional context outside",
         compose(BUILD_LONG.format(dockerfile="/srv/Dockerfile"), inside={"app/Dockerfile": DOCKERFILE}),
         lambda p, found: (at(BUILD_LONG, "dockerfile:", count=2, contains="build.dockerfile /srv/Dockerfile")(
             p, found), _assert("additional context assets ../assets is outside" in found[1].message))),
    Case("compose.outside-repo", False, "secret and config files not tracked: berth ships them",
         compose(SECRETS, inside={"secrets/db_password.txt": "x\n", "nginx.conf": "events {}\n"}, track=False)),
    Case("compose.outside-repo", True, "secret and config files outside the project",
         compose(SECRETS.replace("./secrets/", "../secrets/").replace("./nginx.conf", "/etc/nginx.conf"),
                 outside={"secrets/db_password.txt": "x\n"}),
         lambda p, found: (at(SECRETS.replace("./secrets/", "../secrets/"), "file: ../secrets", count=2,
                              contains="secret db_password: file ../secrets/db_password.txt is outside")(p, found),
                           _assert("config nginx: file /etc/nginx.conf is outside" in found[1].message))),
    Case("compose.outside-repo", True, "a symlink in the repo that leads out",
         both(compose(BUILD.format(build="./app"), outside={"elsewhere/Dockerfile": DOCKERFILE}),
              lambda p: ((p.root / "app").symlink_to(p.root.parent / "elsewhere"), p.git("add", "app"))),
         at(BUILD.format(build="./app"), "build:", contains="is outside the project directory")),
    Case("compose.outside-repo", True, "a home directory path",
         compose(BUILD.format(build="~/src/app")),
         at(BUILD.format(build="~/src/app"), "build:", contains="build context ~/src/app is outside the project")),
    Case("compose.outside-repo", True, "interpolated path",
         compose("include:\n  - ${SHARED}/worker.yml\nservices:\n  web:\n" + IMAGE, app_env="SHARED=/opt/shared\n"),
         at("include:\n  - ${SHARED}", "${SHARED}", contains="include /opt/shared/worker.yml")),
    Case("compose.outside-repo", False, "tracked include, extends.file, build context, secret",
         compose("include:\n  - compose.worker.yml\nservices:\n  web:\n    extends:\n      file: common.yml\n"
                 "      service: base\n    build: ./app\n    secrets: [token]\nsecrets:\n  token:\n    file: token.txt\n",
                 inside={"compose.worker.yml": WORKER, "common.yml": BASE, "app/Dockerfile": DOCKERFILE,
                         "token.txt": "not a secret\n"})),
    Case("compose.outside-repo", False, "build from a URL or a git repository",
         compose("services:\n  a:\n    build: https://github.com/example/app.git#main\n"
                 "  b:\n    build:\n      context: git@github.com:example/app.git\n"
                 "  c:\n    build:\n      context: .\n      dockerfile_inline: FROM nginx\n"
                 "      additional_contexts:\n        base: docker-image://nginx:1.25\n"
                 "  d:\n    build: github.com/example/app\n")),
    Case("compose.outside-repo", False, "secret from the environment, external config",
         compose("services:\n  web:\n" + IMAGE + "secrets:\n  token:\n    environment: TOKEN\n"
                 "configs:\n  nginx:\n    external: true\n")),
    Case("compose.outside-repo", False, "an env_file outside is compose.env-file-not-shipped's",
         compose("services:\n  web:\n" + IMAGE + "    env_file: ../outside.env\n")),
    # compose.env-file-not-shipped: the same paths, for env_file (the rules share compose.needed_files)
    Case("compose.env-file-not-shipped", True, "outside the repo",
         compose("services:\n  web:\n" + IMAGE + "    env_file:\n      - path: ../outside.env\n",
                 outside={"outside.env": "A=1\n"}),
         at("services:\n  web:\n" + IMAGE + "    env_file:\n      - path:", "path:",
            contains="env_file ../outside.env is outside the project directory")),
    Case("compose.env-file-not-shipped", False, "the shipped env file written with ./",
         compose("services:\n  web:\n" + IMAGE + "    env_file:\n      - path: ./.env.docker\n")),
    # compose.secret-file: berth ships the secret and config files git does not carry; they must be there and
    # a committed secret must not be a weak one
    Case("compose.secret-file", True, "a secret file the service mounts does not exist",
         compose(SECRETS, inside={"nginx.conf": "events {}\n"}),
         at(SECRETS, "file: ./secrets", contains="secret db_password: file ./secrets/db_password.txt does not exist, "
            "so compose cannot start the services that use secret db_password")),
    Case("compose.secret-file", True, "a committed secret file holds a weak password",
         compose(SECRETS, inside={"secrets/db_password.txt": "changeme\n", "nginx.conf": "events {}\n"}),
         at(SECRETS, "file: ./secrets", contains="is committed to git and holds a value that is")),
    Case("compose.secret-file", True, "a committed secret file holds a short one",
         compose(SECRETS, inside={"secrets/db_password.txt": "Zq8x7c\n", "nginx.conf": "events {}\n"}),
         at(SECRETS, "file: ./secrets", contains="holds a value that is only 6 characters long")),
    Case("compose.secret-file", True, "a committed strong secret is still everyone's (a warning)",
         compose(SECRETS, inside={"secrets/db_password.txt": "pw-Zq8x7c6v5b4n3m2L1kJ9hG\n", "nginx.conf": "e\n"}),
         lambda p, found: (at(SECRETS, "file: ./secrets", contains="is committed to git: everyone with the "
                              "repository has this secret")(p, found), _assert(found[0].severity.name == "WARNING"))),
    Case("compose.secret-file", True, "an untracked secret file git does not ignore (a warning)",
         compose(SECRETS, inside={"secrets/db_password.txt": "pw-Zq8x7c6v5b4n3m2L1kJ9hG\n", "nginx.conf": "e\n"},
                 track=False),
         lambda p, found: (at(SECRETS, "file: ./secrets", count=2, contains="is neither committed nor ignored: berth "
                              "ships it")(p, found), _assert(found[0].severity.name == "WARNING"))),
    Case("compose.secret-file", False, "ignored secret file and committed config: berth ships the secret",
         both(compose(SECRETS, inside={"nginx.conf": "events {}\n"}),
              lambda p: (p.write(".gitignore", "secrets/\n"), p.git("add", ".gitignore"),
                         p.write("secrets/db_password.txt", "pw-Zq8x7c6v5b4n3m2L1kJ9hG\n")))),
    Case("compose.secret-file", False, "a declared secret no started service uses may be missing",
         compose("services:\n  web:\n" + IMAGE + "secrets:\n  old:\n    file: ./old.txt\n")),
    Case("compose.secret-file", False, "a secret from the environment has no file",
         compose("services:\n  web:\n" + IMAGE + "    secrets: [token]\nsecrets:\n  token:\n    environment: TOKEN\n")),
    Case("compose.override-not-deployed", True, "an override file compose merges by itself",
         compose("services:\n  web:\n" + IMAGE, inside={"compose.override.yaml": "services:\n  web:\n    ports: []\n"}),
         expect_at("compose.override.yaml", 1, 1, contains="compose.override.yaml is here and `docker compose up` "
                   "would merge it into docker-compose.yml, but berth deploys docker-compose.yml only")),
    Case("compose.override-not-deployed", False, "the override listed in COMPOSE_FILES",
         both(compose("services:\n  web:\n" + IMAGE, inside={"docker-compose.override.yml": "services: {}\n"}),
              lambda p: p.write(".env", p.DOTENV + "COMPOSE_FILES=docker-compose.yml,docker-compose.override.yml\n"))),
    # compose.no-active-service (review 15): verify would pass with zero containers
    Case("compose.no-active-service", True, "every service behind profiles",
         compose(ALL_BEHIND_PROFILES),
         at(ALL_BEHIND_PROFILES, "services:", contains="no service would start: web, worker have profiles: that "
            "are not enabled (COMPOSE_PROFILES is not set in .env.docker)")),
    Case("compose.no-active-service", True, "COMPOSE_PROFILES enables another profile",
         compose(profiles(("web", "web")), app_env="COMPOSE_PROFILES=debug\n"),
         at(profiles(("web", "web")), "services:", contains="(COMPOSE_PROFILES=debug)")),
    Case("compose.no-active-service", True, "the only active service is scaled to 0",
         compose(SCALED_TO_ZERO),
         at(SCALED_TO_ZERO, "services:", contains="jobs has profiles: that are not enabled (COMPOSE_PROFILES is not "
            "set in .env.docker); web is scaled to 0")),
    Case("compose.no-active-service", False, "COMPOSE_PROFILES enables one",
         compose(ALL_BEHIND_PROFILES, app_env="COMPOSE_PROFILES=jobs\n")),
    Case("compose.no-active-service", False, "COMPOSE_PROFILES=*",
         compose(ALL_BEHIND_PROFILES, app_env="COMPOSE_PROFILES=*\n")),
    Case("compose.no-active-service", False, "one service without profiles",
         compose(profiles(("web", None), ("debug", "debug")))),
    Case("compose.no-active-service", False, "include may bring the services check does not resolve",
         compose("include:\n  - compose.worker.yml\n" + ALL_BEHIND_PROFILES, inside={"compose.worker.yml": WORKER})),
    Case("compose.no-active-service", False, "no services at all is compose.no-services'",
         compose("services: {}\n")),
]


def _assert(condition: bool) -> None:
    assert condition


test_rule = rule_test(CASES)
