"""A real ACME server for the sandbox: Debian's Pebble, and its test DNS server (pebble-challtestsrv).

berth's proxy on a sandbox host gets its certificates from here exactly as it would from Let's Encrypt:
it registers, asks for an order, answers the HTTP-01 or TLS-ALPN-01 challenge on ports 80/443 of the host,
and Pebble's validation connects there. The host names resolve through challtestsrv (each name → the
sandbox host it is deployed to), so nothing leaves the machine.

Pebble listens on host 1's gateway (the root namespace's side of its veth), which every sandbox host and
its containers reach. Its own HTTPS is signed by a CA made here at start (`ca_root`, what berth's
`acme_ca_root` names); the certificates it issues chain to a root it makes at its own start
(`issuing_roots()`, what a client verifies a site against). Processes and files are found again by pid
files and command lines, so `stop` (and `berth sandbox down`) cleans up after a killed run too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from berth.errors import BerthError
from berth.sandbox.processes import kill, pid_alive, pids_matching, wait_gone

DNS = "127.0.0.1:18053"
MANAGEMENT = "127.0.0.1:18055"  # challtestsrv's: /add-a, /clear-a
ACME_PORT, ACME_MANAGEMENT_PORT = 14000, 15000
START_SECONDS = 20


@dataclass(frozen=True)
class AcmeServer:
    directory: str  # the ACME directory URL (berth's acme_ca)
    ca_root: str  # the PEM Pebble's own HTTPS is signed by (berth's acme_ca_root)
    management: str  # Pebble's management API (its issuing roots)

    def issuing_roots(self) -> str:
        """The root certificate every certificate Pebble issues chains to (made at each Pebble start)."""
        with urllib.request.urlopen(f"{self.management}/roots/0", timeout=10, context=self._tls()) as answer:
            return answer.read().decode()

    def point(self, name: str, address: str) -> None:
        """Answer A queries for `name` with `address` (the sandbox host the name is deployed to)."""
        _post(f"http://{MANAGEMENT}/add-a", {"host": name, "addresses": [address]})

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_root)


def directory() -> Path:
    return Path(os.environ.get("BERTH_SANDBOX_DIR", "/var/lib/berth-sandbox")) / "acme"  # berth.sandbox.ROOT


def start(listen: str, default_address: str) -> AcmeServer:
    """Start Pebble on `listen` (an address of the root namespace) and its DNS, which answers every A query
    with `default_address` unless `point` says otherwise. Restarts them when they already run."""
    for program in ("pebble", "pebble-challtestsrv", "openssl"):
        if shutil.which(program) is None:
            raise BerthError(f"the sandbox's ACME server needs {program}",
                             fix="run scripts/setup.sh (as root): it installs Debian's pebble and openssl")
    stop()
    d = directory()
    d.mkdir(parents=True, exist_ok=True)
    ca, cert, key = _certificates(d, listen)
    config = d / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{listen}:{ACME_PORT}", "managementListenAddress": f"{listen}:{ACME_MANAGEMENT_PORT}",
        "certificate": str(cert), "privateKey": str(key),
        "httpPort": 80, "tlsPort": 443,  # where validation connects: the proxy's ports
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    _spawn(["pebble-challtestsrv", "-dns01", DNS, "-management", MANAGEMENT, "-http01", "", "-https01", "",
            "-tlsalpn01", "", "-defaultIPv4", default_address, "-defaultIPv6", ""],
           d / "challtestsrv.pid", d / "challtestsrv.log", env)
    _spawn(["pebble", "-config", str(config), "-dnsserver", DNS], d / "pebble.pid", d / "pebble.log", env)
    server = AcmeServer(f"https://{listen}:{ACME_PORT}/dir", str(ca), f"https://{listen}:{ACME_MANAGEMENT_PORT}")
    deadline = time.monotonic() + START_SECONDS
    for what, url, log, context in (("its DNS (pebble-challtestsrv)", f"http://{MANAGEMENT}/", "challtestsrv.log", None),
                                    ("pebble", server.directory, "pebble.log", server._tls())):
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2, context=context):
                    break
            except urllib.error.HTTPError:  # it answers (challtestsrv's / is a 404)
                break
            except OSError:
                if time.monotonic() > deadline:
                    text = (d / log).read_text(errors="replace")[-2000:]
                    stop()
                    raise BerthError(f"the sandbox's ACME server: {what} did not start", details=text) from None
                time.sleep(0.1)
    return server


def stop() -> bool:
    """Stop Pebble and its DNS (by their pid files, and by command line after a killed run)."""
    d = directory()
    pids = []
    for name in ("pebble.pid", "challtestsrv.pid"):
        try:
            pids.append(int((d / name).read_text().strip()))
        except (OSError, ValueError):
            pass
    pids = [p for p in pids if _is_ours(p)]
    pids += [p for p in pids_matching(f"-management {MANAGEMENT}", f"-config {d}/") if p not in pids]
    kill(pids, signal.SIGTERM)
    if not wait_gone(pids, 5):
        kill(pids)
        wait_gone(pids, 5)
    for name in ("pebble.pid", "challtestsrv.pid"):
        (d / name).unlink(missing_ok=True)
    return bool(pids)


def running() -> bool:
    return pid_alive(directory() / "pebble.pid")


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.startswith((b"pebble\0", b"pebble-challtestsrv\0"))


def _spawn(argv: list[str], pidfile: Path, log: Path, env: dict) -> None:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")


def _certificates(d: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for Pebble's address (made once per sandbox directory)."""
    ca, ca_key, cert, key = d / "ca.pem", d / "ca.key", d / "cert.pem", d / "key.pem"
    if all(p.exists() for p in (ca, cert, key)) and f"IP:{address}" in _sans(cert):
        return ca, cert, key
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(["req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "30",
              "-subj", "/CN=berth sandbox ACME server CA"])
    csr = d / "cert.csr"
    _openssl(["req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=pebble"])
    ext = d / "cert.ext"
    ext.write_text(f"subjectAltName=IP:{address},DNS:localhost\n")
    _openssl(["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
              "-out", str(cert), "-days", "30", "-extfile", str(ext)])
    return ca, cert, key


def _sans(cert: Path) -> str:
    result = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                            capture_output=True, text=True)
    return result.stdout.replace("IP Address:", "IP:")


def _openssl(args: list[str]) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BerthError(f"openssl {args[0]} failed making the sandbox ACME server's certificate",
                         details=result.stderr[-1000:])


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass
