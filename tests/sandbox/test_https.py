"""HTTPS by berth's proxy on a real server: `domains` in berth.toml, a certificate from a real ACME server
(Pebble, in the sandbox, with its test DNS answering the name with the sandbox host's address), verified by
the client against Pebble's root; HTTP redirected to HTTPS; the certificate kept when the proxy is replaced."""

from __future__ import annotations

import http.client
import socket
import ssl
import time

import pytest

from berth.sandbox import acme
from berth.sandbox.proxy_image import import_proxy_image
from tests.sandbox.test_rollout import Load

NAME = "app.berth.test"
CERT_SECONDS = 90  # Caddy orders the certificate once it starts; Pebble answers in a second or two


@pytest.fixture
def acme_server(sandbox):
    host = sandbox.hosts[0]
    server = acme.start(host.gateway, host.address)
    yield server
    acme.stop()


@pytest.fixture
def https_app(app, acme_server):
    app.env["BERTH_PROXY_IMAGE"] = import_proxy_image(app.server.host.docker_host)
    app.write_dotenv()
    app.commit("serve app.berth.test by HTTPS", **{"berth.toml": (
        "[environments.staging]\n"
        f'domains = {{ web = ["{NAME}"] }}\n'
        'acme_email = "ops@berth.test"\n'
        f'acme_ca = "{acme_server.directory}"\n'
        f'acme_ca_root = "{acme_server.ca_root}"\n')})
    first = app.berth("deploy", "--push")
    assert first.returncode == 0, first.stdout + first.stderr
    return app


def https_get(app, roots: str, path: str = "/", timeout: float = 10) -> tuple[int, str, dict]:
    """GET https://app.berth.test{path} from the sandbox host's address, verifying the certificate (chain to
    `roots`, and the name)."""
    context = ssl.create_default_context(cadata=roots)
    with socket.create_connection((app.server.host.address, 443), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=NAME) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            cert = tls.getpeercert()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, body.decode(errors="replace"), cert


def wait_for_certificate(app, roots: str) -> dict:
    deadline = time.monotonic() + CERT_SECONDS
    while True:
        try:
            return https_get(app, roots, "/health")[2]
        except (ssl.SSLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_https_via_pebble_certificate_verifies_and_http_redirects(https_app, acme_server):
    app = https_app
    roots = acme_server.issuing_roots()
    cert = wait_for_certificate(app, roots)  # verified: chain to Pebble's root, and the name
    assert ("DNS", NAME) in cert["subjectAltName"]
    status, body, _ = https_get(app, roots, "/version")
    assert status == 200 and body.strip() == "1"
    # the verification is real: a client trusting another CA (the one Pebble's own HTTPS is signed by) refuses
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(app, acme_server_ca(acme_server))
    # plain HTTP on port 80 redirects to HTTPS
    conn = http.client.HTTPConnection(app.server.host.address, 80, timeout=10)
    conn.request("GET", "/version?x=1", headers={"Host": NAME})
    answer = conn.getresponse()
    assert answer.status in (301, 308) and answer.getheader("Location") == f"https://{NAME}/version?x=1"
    conn.close()
    # the port the compose file publishes keeps serving plain HTTP (through the proxy, for the switch)
    with Load(app.url("/version")) as load:
        time.sleep(0.5)
    assert load.ok and not load.failures

    # berth doctor checks the certificate
    doctor = app.berth("doctor", "-v")
    line = next((x for x in doctor.stdout.splitlines() if "proxy.certificate" in x), "")
    assert line.split()[:1] == ["ok"] and f"{NAME}: certificate valid until" in line, doctor.stdout


def acme_server_ca(server) -> str:
    with open(server.ca_root) as f:  # signs Pebble's own HTTPS, not the certificates it issues
        return f.read()


def test_https_keeps_serving_through_a_switch_and_the_certificate_outlives_the_proxy(https_app, acme_server):
    app = https_app
    roots = acme_server.issuing_roots()
    first = wait_for_certificate(app, roots)
    app.commit("v2", **{"web__VERSION": "2\n"})

    failures, answers = [], []

    class HttpsLoad(Load):
        def step(self) -> None:
            try:
                answers.append(https_get(app, roots, "/version", timeout=10)[1].strip())
            except (ssl.SSLError, OSError) as exc:
                failures.append(str(exc))

    with HttpsLoad(""):
        result = app.berth("deploy", "--push")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not failures, failures[:5]
    assert answers and answers[-1] == "2" and set(answers) <= {"1", "2"}

    # a new proxy container (a changed proxy image): the certificate is read from its data volume, not ordered
    issued_before = (acme.directory() / "pebble.log").read_text().count("Issued certificate")
    app.server.docker("tag", app.env["BERTH_PROXY_IMAGE"], "berth-sandbox/caddy:next")
    app.write_dotenv(BERTH_PROXY_IMAGE="berth-sandbox/caddy:next")
    upgrade = app.berth("deploy")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    image = app.server.docker("ps", "--filter", f"label=com.docker.compose.project={app.name}", "--filter",
                              "label=com.docker.compose.service=berth-proxy", "--format", "{{.Image}}").strip()
    assert image == "berth-sandbox/caddy:next"
    again = wait_for_certificate(app, roots)
    assert again["serialNumber"] == first["serialNumber"]
    assert (acme.directory() / "pebble.log").read_text().count("Issued certificate") == issued_before
