"""A local stand-in for berth's proxy image (caddy:2.8.4-alpine), for sandbox engines that cannot pull.

It is tagged `berth-sandbox/caddy:2.6.2`, and the sandbox's apps name it with proxy_image: berth's default
is pinned by its registry digest, which only a pulled image carries.

It is made from Debian's caddy package on this machine (Caddy 2.6.2): the binary and the shared libraries
it needs, copied onto the sandbox's busybox:1.35 base, which brings the `wget` berth's probes run inside
the proxy. Caddy 2.6 reads the Caddyfile berth writes and serves its admin API as 2.8 does. A label with a
hash of the binary lets a second call skip the build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from berth.errors import BerthError

LABEL_KEY = "berth.sandbox.proxy"
STANDIN = "berth-sandbox/caddy:2.6.2"
CADDY = Path("/usr/bin/caddy")
DOCKERFILE = """FROM busybox:1.35
COPY rootfs/ /
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
LABEL {label_key}={label} berth.sandbox.note="stand-in: Debian's caddy {version} on busybox"
EXPOSE 80 443 2019
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
"""


def _libraries(binary: Path) -> list[Path]:
    """The shared objects `binary` loads (ldd), the dynamic loader included."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30).stdout
    found = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            found.append(Path(m.group(1)))
    return found


def _label() -> str:
    digest = hashlib.sha256()
    with open(CADDY, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def import_proxy_image(docker_host: str, tag: str = STANDIN) -> str:
    """Give the engine at docker_host the stand-in proxy image under `tag` (returned: what proxy_image must
    name, as the default is pinned by a registry digest a local image cannot have); nothing to do if it has it."""
    if not CADDY.is_file():
        raise BerthError("Debian's caddy package is not installed, so the sandbox has no proxy image",
                         fix="run scripts/setup.sh (it installs caddy)")
    label = _label()
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    have = subprocess.run(["docker", "-H", docker_host, "image", "inspect", "--format",
                           f'{{{{index .Config.Labels "{LABEL_KEY}"}}}}', tag], capture_output=True, text=True,
                          timeout=60, env=env)
    if have.returncode == 0 and have.stdout.strip() == label:
        return tag
    version = subprocess.run([str(CADDY), "version"], capture_output=True, text=True, timeout=30).stdout.split()[:1]
    with tempfile.TemporaryDirectory(prefix="berth-proxy-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        for source in [CADDY, *_libraries(CADDY)]:
            dest = rootfs / source.relative_to("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.resolve(), dest)
        (rootfs / "etc" / "caddy").mkdir(parents=True)
        (rootfs / "data").mkdir()
        (rootfs / "config").mkdir()
        (rootfs / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
        (Path(tmp) / "Dockerfile").write_text(DOCKERFILE.format(label_key=LABEL_KEY, label=label,
                                                                 version=(version or ["2.6"])[0]))
        proc = subprocess.run(["docker", "-H", docker_host, "build", "--quiet", "--tag", tag, tmp],
                              capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise BerthError(f"making the stand-in {tag} failed", where=f"the docker engine at {docker_host}",
                         details=(proc.stdout + proc.stderr)[-2000:])
    return tag
