"""Local stand-ins for the images a `berth init` app uses, for sandbox hosts without internet.

The app `berth init` generates for a FastAPI + PostgreSQL + Redis repository names
`python:3.12-slim`, `postgres:16.4-alpine` and `redis:7.4-alpine`. The sandbox's engines cannot
pull anything, so those tags are made here from ONE Debian bookworm rootfs (`debootstrap
--variant=minbase` plus python3/venv/pip, postgresql-15, redis-server and redis-tools):

- the tags are STAND-INS: inside is bookworm's Python 3.11, PostgreSQL 15 and Redis 7.0, on glibc
  (not Alpine). They behave like the official images where a generated app relies on it: the
  postgres entrypoint initialises `$PGDATA` from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB,
  `pg_isready` and `redis-cli` are on PATH, `python -m venv` and `useradd` work;
- pip needs no network: the python image carries a wheelhouse at /wheels (made on the build
  machine with `pip download` for WHEELHOUSE_REQUIREMENTS) and sets PIP_NO_INDEX=1 and
  PIP_FIND_LINKS=/wheels, so `pip install -r requirements.txt` in a `docker build` works offline
  for those requirements (and nothing else).

`stack_rootfs_tar()` builds the rootfs tarball once into /var/cache/berth-sandbox (which
`berth sandbox down` leaves alone); its name carries a hash of the recipe, so a changed recipe
rebuilds. A build happens in a temporary directory and is renamed into place at the very end: a
killed build leaves only a `.build-*` directory, which the next call unmounts and removes.
`import_stack_images(docker_host)` loads the tarball into an engine once and derives the three
tags from it with metadata-only builds; a label with the recipe hash lets a second call skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from berth.errors import BerthError

CACHE = Path(os.environ.get("BERTH_SANDBOX_CACHE", "/var/cache/berth-sandbox"))
MIRROR = os.environ.get("BERTH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PG_MAJOR = "15"

from berth.scaffold.project import POSTGRES_IMAGE, PYTHON_IMAGE, REDIS_IMAGE  # noqa: E402 - the tags `berth init` writes

STACK_IMAGES = (PYTHON_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE)

PACKAGES = ("python3", "python3-venv", "python-is-python3", "python3-pip", f"postgresql-{PG_MAJOR}",
            "redis-server", "redis-tools", "ca-certificates")
WHEELHOUSE_REQUIREMENTS = ["fastapi==0.115.0", "uvicorn==0.32.1", "psycopg[binary]==3.2.3", "redis==5.2.0"]
RECIPE_VERSION = 1  # bump when the build steps change in a way the recipe text does not show

LABEL_KEY = "berth.sandbox.recipe"
BASE_REPO = "berth-sandbox/stack-base"
TAR_PREFIX = "stack-rootfs-"
BUILD_PREFIX = ".build-"
LOCK_WAIT = 30 * 60  # seconds to wait for another build (or a killed build's leftover children)
BUILD_TIMEOUT = 30 * 60
IMPORT_TIMEOUT = 15 * 60
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# berth sandbox stand-in for the official postgres image's entrypoint (Debian bookworm, PostgreSQL 15).
# First start on an empty $PGDATA: initdb with POSTGRES_USER and POSTGRES_PASSWORD (handed over in a
# file, never on a command line), scram-sha-256 over the network, listen on all addresses, create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql and *.sh. Every start: postgres as user postgres.
set -eu
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

case "${1:-}" in
  '' | -*) set -- postgres "$@" ;;
esac
[ "$1" = postgres ] || exec "$@"

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  exec env HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ -s "$PGDATA/PG_VERSION" ]; then
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  exec "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
  cat >&2 <<'EOF'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
EOF
  exit 1
fi

pwfile=""
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
  pwfile="$(mktemp)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"  # printf is a shell builtin: no process sees it in argv
fi
# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options, as in the official image
initdb --username="$POSTGRES_USER" ${pwfile:+"--pwfile=$pwfile"} --auth-local=trust --auth-host="$auth" \
  ${POSTGRES_INITDB_ARGS:-}
rm -f "$pwfile"
printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

# set up over the unix socket only, then stop and start for real
pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
run_psql() { psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username="$POSTGRES_USER" "$@"; }
if [ "$POSTGRES_DB" != postgres ]; then
  run_psql --dbname=postgres --set=db="$POSTGRES_DB" <<'EOSQL'
CREATE DATABASE :"db";
EOSQL
fi
for f in /docker-entrypoint-initdb.d/*; do
  case "$f" in
    *.sh) echo "$0: running $f"; . "$f" ;;
    *.sql) echo "$0: running $f"; run_psql --dbname="$POSTGRES_DB" -f "$f" ;;
  esac
done
pg_ctl -D "$PGDATA" -m fast -w stop
echo "PostgreSQL init process complete; ready for start up."
exec "$@"
"""

REDIS_ENTRYPOINT = r"""#!/bin/sh
# berth sandbox stand-in for the official redis image's entrypoint (Debian bookworm, Redis 7.0):
# `redis-server ...` runs as user redis in the working directory (/data). As in the official image,
# protected mode is off unless a config file (the first argument) turns it on.
set -eu
case "${1:-}" in
  '' | -* | *.conf) set -- redis-server "$@" ;;
esac
[ "$1" = redis-server ] || exec "$@"
shift
case "${1:-}" in
  '' | -*) set -- redis-server --protected-mode no "$@" ;;
  *) set -- redis-server "$@" ;;
esac
if [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis:redis '{}' +
  exec env HOME=/var/lib/redis setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
"""

ENTRYPOINTS = {
    "usr/local/bin/docker-entrypoint.sh": POSTGRES_ENTRYPOINT,
    "usr/local/bin/redis-entrypoint.sh": REDIS_ENTRYPOINT,
}

# Run inside the chroot (so absolute symlinks resolve inside the rootfs, never on the build machine).
CONFIGURE_SCRIPT = r"""set -eu
# the cluster the postgresql package creates at install, its logs, and the snakeoil TLS key
# (it would be the same secret in every image)
rm -rf /etc/postgresql/* /var/lib/postgresql/* /var/log/postgresql/* \
  /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
mkdir -p /var/lib/postgresql/data /run/postgresql /data /docker-entrypoint-initdb.d
chown postgres:postgres /var/lib/postgresql/data /run/postgresql
chmod 700 /var/lib/postgresql/data
chmod 3777 /run/postgresql
chown redis:redis /data
chmod 755 /usr/local/bin/docker-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
chmod -R a+rX /wheels
# `pip install` outside a venv works, as in the official python image
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
# the build machine's network settings (docker supplies its own) and the build's service policy
: > /etc/resolv.conf
echo localhost > /etc/hostname
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
rm -f /usr/sbin/policy-rc.d
# trim: package lists and caches, docs, man pages, translations, locales but C.utf8, and LLVM
# (only PostgreSQL's optional JIT uses it; without llvmjit.so the server runs with JIT off)
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old \
  /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/i18n \
  /usr/share/lintian /usr/share/postgresql/*/man /usr/lib/*-linux-gnu/libLLVM-* \
  /usr/lib/*-linux-gnu/libz3.so* /usr/lib/postgresql/*/lib/llvmjit* /usr/lib/postgresql/*/lib/bitcode \
  /root/.cache /tmp/* /var/tmp/*
find /usr/lib/locale -mindepth 1 -maxdepth 1 ! -name C.utf8 -exec rm -rf '{}' +
find /var/log -type f -delete
"""

# Dockerfile lines per tag (after FROM, before LABEL); metadata only, so each build takes a moment.
IMAGE_SPECS = {
    PYTHON_IMAGE: (
        f"ENV PATH={STD_PATH} LANG=C.UTF-8 PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels"
        " PIP_DISABLE_PIP_VERSION_CHECK=1",
        "WORKDIR /",
        'CMD ["python3"]',
    ),
    POSTGRES_IMAGE: (
        f"ENV PATH=/usr/lib/postgresql/{PG_MAJOR}/bin:{STD_PATH} LANG=C.UTF-8 PG_MAJOR={PG_MAJOR}"
        " PGDATA=/var/lib/postgresql/data",
        "WORKDIR /",
        'VOLUME ["/var/lib/postgresql/data"]',
        "STOPSIGNAL SIGINT",
        "EXPOSE 5432",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
    ),
    REDIS_IMAGE: (
        f"ENV PATH={STD_PATH} LANG=C.UTF-8",
        "WORKDIR /data",
        'VOLUME ["/data"]',
        "EXPOSE 6379",
        'ENTRYPOINT ["redis-entrypoint.sh"]',
        'CMD ["redis-server"]',
    ),
}
STAND_IN_NOTE = {
    PYTHON_IMAGE: "stand-in: Debian bookworm, Python 3.11, offline wheelhouse at /wheels",
    POSTGRES_IMAGE: f"stand-in: Debian bookworm, PostgreSQL {PG_MAJOR}",
    REDIS_IMAGE: "stand-in: Debian bookworm, Redis 7.0",
}


# ---------------------------------------------------------------- the recipe (pure)

def recipe() -> dict:
    """Everything that decides the rootfs tarball's content."""
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "packages": sorted(PACKAGES),
        "requirements": list(WHEELHOUSE_REQUIREMENTS),
        "entrypoints": dict(sorted(ENTRYPOINTS.items())),
        "configure": CONFIGURE_SCRIPT,
    }


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def recipe_hash() -> str:
    return _digest(recipe())


def images_label(rootfs_hash: str | None = None) -> str:
    """The label value the three tags carry: the rootfs recipe plus the image metadata."""
    return _digest([rootfs_hash or recipe_hash(), IMAGE_SPECS, STAND_IN_NOTE])


def tar_name(rootfs_hash: str) -> str:
    return f"{TAR_PREFIX}{rootfs_hash}.tar"


def base_tag(rootfs_hash: str) -> str:
    return f"{BASE_REPO}:{rootfs_hash}"


def image_dockerfile(tag: str, base: str, label: str) -> str:
    note = json.dumps(f"{tag} {STAND_IN_NOTE[tag]}")
    return "\n".join([f"FROM {base}", *IMAGE_SPECS[tag], f"LABEL {LABEL_KEY}={label} berth.sandbox.note={note}"]) + "\n"


def pip_platforms(glibc_minor: int, arch: str) -> list[str]:
    """Every manylinux tag a glibc 2.<minor> system runs, newest first (pip does not expand them)."""
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 4, -1)]
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    return tags + [f"{name}_{arch}" for name, m in legacy.items() if m <= glibc_minor]


def missing_distribution(pip_output: str) -> str | None:
    """The requirement an offline `pip install` could not find, from its error message."""
    m = re.search(r"No matching distribution found for (\S+)", pip_output)
    return m.group(1) if m else None


def mounts_under(path: Path | str, mountinfo: str) -> list[str]:
    """Mount points at or below `path` in /proc/self/mountinfo text, deepest first."""
    prefix = str(path).rstrip("/")
    found = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.add(point)
    return sorted(found, key=len, reverse=True)


# ---------------------------------------------------------------- running things

_held_locks: list[int] = []  # the cache lock while held: build subprocesses inherit it (see _cache_lock)


def _tail(*outputs: str | bytes | None, limit: int = 3000) -> str:
    text = "\n".join(o.decode(errors="replace") if isinstance(o, bytes) else o for o in outputs if o)
    return text.strip()[-limit:]


def _run(argv: list[str], what: str, *, fix: str | None = None, where: str | None = None,
         timeout: float = BUILD_TIMEOUT, input: str | None = None, env: dict | None = None) -> str:
    """Run argv; on failure raise a BerthError saying `what` failed, with the output's tail."""
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env,
                              pass_fds=tuple(_held_locks))
    except FileNotFoundError:
        raise BerthError(f"{what}: `{argv[0]}` is not installed", where=where, fix=fix) from None
    except subprocess.TimeoutExpired as e:
        raise BerthError(f"{what} failed: `{argv[0]}` did not finish within {timeout:.0f}s", where=where, fix=fix,
                         details=_tail(e.stdout, e.stderr)) from None
    if proc.returncode != 0:
        raise BerthError(f"{what} failed (`{' '.join(argv[:3])} ...` exited with {proc.returncode})",
                         where=where, fix=fix, details=_tail(proc.stdout, proc.stderr))
    return proc.stdout


def _chroot(rootfs: Path, argv: list[str], what: str, **kw) -> str:
    env = ["/usr/bin/env", "-i", f"PATH={STD_PATH}", "HOME=/root", "LANG=C.UTF-8",
           "DEBIAN_FRONTEND=noninteractive"]
    return _run(["chroot", str(rootfs), *env, *argv], what, where=f"the rootfs being built in {rootfs}", **kw)


# ---------------------------------------------------------------- cache directory: lock, stale builds

@contextlib.contextmanager
def _cache_lock(wait: bool):
    """Hold CACHE/.lock (yields False if `wait` is off and another process has it).

    Build subprocesses inherit the descriptor, so if this process is SIGKILLed the lock stays held
    until its orphaned children (debootstrap, apt) are gone too: the next call waits for them
    instead of deleting a directory they still write into.
    """
    fd = os.open(CACHE / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _flock(fd, LOCK_WAIT if wait else 0):
            yield False
            return
        _held_locks.append(fd)
        try:
            yield True
        finally:
            _held_locks.remove(fd)
    finally:
        os.close(fd)


def _flock(fd: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                if seconds:
                    raise BerthError(f"another build of the sandbox images still holds {CACHE / '.lock'} "
                                     f"after {seconds:.0f}s", fix=f"wait for it, or find it with "
                                     f"`fuser -v {CACHE / '.lock'}` and stop it") from None
                return False
            time.sleep(0.5)


def _remove_build_dir(path: Path) -> None:
    """Remove a (possibly killed) build directory: first unmount what debootstrap or we mounted in it."""
    for point in mounts_under(path, Path("/proc/self/mountinfo").read_text()):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(path, Path("/proc/self/mountinfo").read_text())
    if left:
        raise BerthError(f"cannot remove the old build directory {path}: still mounted there: {', '.join(left)}",
                         fix=f"unmount those by hand (umount -l), then remove {path}")
    shutil.rmtree(path)


def _clean_stale_builds() -> None:
    for path in sorted(CACHE.glob(BUILD_PREFIX + "*")):
        _remove_build_dir(path)


def _remove_other_tars(keep: Path) -> None:
    for path in CACHE.glob(f"{TAR_PREFIX}*.tar"):
        if path != keep:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- building the rootfs

def _check_build_prerequisites() -> None:
    if os.geteuid() != 0:
        raise BerthError("building the sandbox's stack images needs root (debootstrap, chroot, mount)",
                         fix="run as root")
    missing = [tool for tool in ("debootstrap", "chroot", "tar", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        raise BerthError(f"building the sandbox's stack images needs {', '.join(missing)}",
                         fix="apt-get install debootstrap (scripts/setup.sh installs it)")
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        raise BerthError(f"building the wheelhouse needs pip for {sys.executable}",
                         fix=f"{sys.executable} -m ensurepip")


def _debootstrap(rootfs: Path) -> None:
    _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR], "debootstrap of the stack rootfs",
         where=f"{rootfs}/debootstrap/debootstrap.log",
         fix=f"check that {MIRROR} is reachable (BERTH_DEBIAN_MIRROR picks another mirror)")


@contextlib.contextmanager
def _proc_mounted(rootfs: Path):
    _run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], "mounting /proc in the stack rootfs")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(rootfs / "proc")], capture_output=True)


def _install_packages(rootfs: Path) -> None:
    # no service may start during the build (postgresql's and redis's postinst try)
    _chroot(rootfs, ["sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
                                 "chmod 755 /usr/sbin/policy-rc.d"], "writing policy-rc.d")
    _chroot(rootfs, ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                     "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                     *PACKAGES], "installing the stack's packages in the rootfs",
            fix=f"check that {MIRROR} is reachable from the build machine")


def _target_python(rootfs: Path) -> tuple[str, int]:
    """The rootfs's Python version ("3.11.2") and glibc minor version (36)."""
    out = _chroot(rootfs, ["python3", "-c", "import platform; print(platform.python_version(), "
                                            "platform.libc_ver()[1])"], "asking the rootfs's python3")
    version, libc = out.split()
    return version, int(libc.split(".")[1])


def _pip_download(wheels: Path, requirements: list[str], py_version: str, glibc_minor: int) -> None:
    major, minor = py_version.split(".")[:2]
    platforms = [arg for p in pip_platforms(glibc_minor, platform.machine()) for arg in ("--platform", p)]
    _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(wheels),
          "--only-binary=:all:", "--implementation", "cp", "--python-version", py_version,
          "--abi", f"cp{major}{minor}", *platforms, *requirements],
         "downloading the wheelhouse", timeout=15 * 60,
         fix="check that PyPI is reachable from the build machine and the pinned versions have binary "
             f"wheels for CPython {major}.{minor} on manylinux")


def _offline_install_missing(rootfs: Path) -> str | None:
    """Install WHEELHOUSE_REQUIREMENTS from /wheels into a venv in the rootfs, offline, like a user
    Dockerfile would; None if it worked, else the requirement the wheelhouse lacks."""
    if not (rootfs / "tmp/wheelcheck").exists():
        _chroot(rootfs, ["python3", "-m", "venv", "/tmp/wheelcheck"], "creating a venv in the rootfs")
    argv = ["chroot", str(rootfs), "/usr/bin/env", "-i", f"PATH={STD_PATH}", "HOME=/root",
            "/tmp/wheelcheck/bin/pip", "install", "-q", "--no-cache-dir", "--disable-pip-version-check",
            "--no-index", "--find-links", "/wheels", *WHEELHOUSE_REQUIREMENTS]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=15 * 60, pass_fds=tuple(_held_locks))
    if proc.returncode == 0:
        return None
    missing = missing_distribution(proc.stdout + proc.stderr)
    if missing is None:
        raise BerthError("the offline `pip install` from the wheelhouse failed", where=f"{rootfs}/wheels",
                         details=_tail(proc.stdout, proc.stderr))
    return missing


def _fill_wheelhouse(rootfs: Path) -> None:
    """pip download on the build machine, then an offline install in the rootfs as the check.

    The build machine's pip evaluates environment markers with its own Python, so a dependency only
    the rootfs's Python needs (redis needs async-timeout before 3.11.3) shows up only in the check;
    it is downloaded then, up to a few rounds.
    """
    wheels = rootfs / "wheels"
    wheels.mkdir()
    py_version, glibc_minor = _target_python(rootfs)
    wanted, seen = list(WHEELHOUSE_REQUIREMENTS), set()
    for _ in range(6):
        _pip_download(wheels, wanted, py_version, glibc_minor)
        missing = _offline_install_missing(rootfs)
        if missing is None:
            return
        if missing in seen:
            break
        seen.add(missing)
        wanted = [missing]
    raise BerthError(f"the wheelhouse still lacks {missing} after downloading it", where=str(wheels),
                     fix="pin that requirement in WHEELHOUSE_REQUIREMENTS (berth/sandbox/images.py)")


def _configure(rootfs: Path) -> None:
    for rel, text in ENTRYPOINTS.items():
        (rootfs / rel).write_text(text)
    _chroot(rootfs, ["sh", "-c", CONFIGURE_SCRIPT], "configuring and trimming the stack rootfs")


def _write_tar(rootfs: Path, dest: Path) -> None:
    _run(["tar", "--create", "--file", str(dest), "--numeric-owner", "--sort=name", "--directory", str(rootfs),
          "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."], "packing the stack rootfs")
    with open(dest, "rb") as fh:
        os.fsync(fh.fileno())


def _build(work: Path, out: Path) -> None:
    rootfs = work / "rootfs"
    _debootstrap(rootfs)
    with _proc_mounted(rootfs):
        _install_packages(rootfs)
        _fill_wheelhouse(rootfs)
    _configure(rootfs)
    partial = work / out.name
    _write_tar(rootfs, partial)
    os.rename(partial, out)  # same filesystem: the finished tarball appears in one step
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def stack_rootfs_tar() -> Path:
    """The rootfs tarball the three stand-in images are made of; built on first use (a few minutes,
    needs root, debootstrap and network), afterwards taken from CACHE."""
    out = CACHE / tar_name(recipe_hash())
    if not out.is_file():
        _check_build_prerequisites()
    CACHE.mkdir(parents=True, exist_ok=True)
    with _cache_lock(wait=not out.is_file()) as locked:
        if locked:
            _clean_stale_builds()
        if out.is_file():
            return out
        work = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=CACHE))
        try:
            _build(work, out)
        finally:
            _remove_build_dir(work)
        _remove_other_tars(keep=out)
    return out


# ---------------------------------------------------------------- loading into an engine

def _docker(docker_host: str, args: list[str], what: str, **kw) -> str:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    return _run(["docker", "-H", docker_host, *args], what, where=f"the docker engine at {docker_host}",
                timeout=IMPORT_TIMEOUT, env=env, **kw)


def _labels(docker_host: str, tags: list[str]) -> list[str] | None:
    """The recipe label of each tag, or None if the engine lacks one of them."""
    try:
        proc = subprocess.run(["docker", "-H", docker_host, "image", "inspect", "--format",
                               f'{{{{index .Config.Labels "{LABEL_KEY}"}}}}', *tags],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None  # the import that follows reports the problem
    return proc.stdout.split() if proc.returncode == 0 else None


def import_stack_images(docker_host: str) -> None:
    """Give the engine at docker_host (e.g. unix:///run/berth-sandbox/h1/docker.sock) the stand-in
    STACK_IMAGES; does nothing if it has them from the same recipe already."""
    rootfs_hash = recipe_hash()
    label = images_label(rootfs_hash)
    if _labels(docker_host, list(STACK_IMAGES)) == [label] * len(STACK_IMAGES):
        return
    tar = stack_rootfs_tar()
    base = base_tag(rootfs_hash)
    if _labels(docker_host, [base]) != [rootfs_hash]:
        _docker(docker_host, ["import", "--change", f"ENV PATH={STD_PATH}",
                              "--change", f"LABEL {LABEL_KEY}={rootfs_hash}", str(tar), base],
                f"importing {tar.name} as {base}")
    for tag in STACK_IMAGES:
        _docker(docker_host, ["build", "--quiet", "--tag", tag, "-"], f"making the stand-in {tag}",
                input=image_dockerfile(tag, base, label))
