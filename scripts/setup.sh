#!/usr/bin/env bash
# Installs what berth's sandbox and tests need on a Debian 12 machine (root): docker engine,
# OpenSSH server, busybox (the example app's userland), iproute2, Compose v2, and a Python venv.
# Idempotent: a second run only checks. docs/SANDBOX.md explains the pieces.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
# (grep without -q: an early exit would SIGPIPE busybox and fail the pipeline under pipefail)
{ [ -x /bin/busybox ] && busybox --list 2>/dev/null | grep -x httpd >/dev/null; } || need_apt+=(busybox-static)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)  # the sandbox's python/postgres/redis stand-in images
command -v ip >/dev/null || need_apt+=(iproute2)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v nsenter >/dev/null || need_apt+=(util-linux)
command -v git >/dev/null || need_apt+=(git)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)  # Compose v1, for servers that only have it
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v caddy >/dev/null || need_apt+=(caddy)  # the sandbox's stand-in for berth's proxy image
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || need_apt+=(pebble)  # a real ACME server for the HTTPS tests
command -v openssl >/dev/null || need_apt+=(openssl)

apt_updated=0
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -q >/dev/null
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Compose v2: bookworm only ships v1; trixie's docker-compose package is one static binary.
plugin_dir=/usr/local/lib/docker/cli-plugins
if ! docker compose version >/dev/null 2>&1; then
  log "installing Compose v2 (docker-compose 2.26.1 from Debian trixie)"
  src=/etc/apt/sources.list.d/berth-trixie-tmp.sources
  sed -e 's/^Suites:.*/Suites: trixie/' /etc/apt/sources.list.d/debian.sources \
    | awk 'BEGIN{RS="";ORS="\n\n"} /debian-security/ {next} {print}' > "$src"
  trap 'rm -f "$src"' EXIT
  apt-get update -q >/dev/null
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q docker-compose=2.26.1-4 >/dev/null)
  rm -f "$src"; trap - EXIT
  apt-get update -q >/dev/null
  dpkg -x "$tmp"/docker-compose_*.deb "$tmp/x"
  mkdir -p "$plugin_dir"
  install -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
fi
docker compose version >/dev/null

# Python: a venv with berth and its test dependencies, pinned in pyproject.toml.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import berth, pytest' 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
  log "installing berth into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch .venv/.installed
fi
log "ok: $(dockerd --version), $(docker compose version), $(/usr/sbin/sshd -V 2>&1 | head -1)"
