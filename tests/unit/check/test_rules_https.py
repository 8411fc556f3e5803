"""settings.domains and settings.acme: HTTPS settings berth's proxy cannot serve are errors at their line
in berth.toml, before anything is done on a server."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.rule_cases import Case, rule_test, write_files


def toml(*lines: str) -> dict[str, str]:
    return {"berth.toml": "[defaults]\n" + "".join(line + "\n" for line in lines)}


def at_line(line: int, text: str):
    def expect(p, found):
        assert any(f.line == line and text in f.message for f in found), [(f.line, f.message) for f in found]
    return expect


MORE_SERVICES = """\
  api:
    image: "nginx:${TAG}"
    restart: unless-stopped
    expose: ["8000", "9000"]
  admin:
    image: "nginx:${TAG}"
    restart: unless-stopped
    expose: ["8000"]
"""
EDGE = """\
  edge:
    image: "nginx:${TAG}"
    restart: unless-stopped
    ports: ["443:8443"]
"""


def services(extra: str, files: dict[str, str]):
    """The project's compose file (web) with `extra` services after it, and `files`."""
    def setup(p):
        p.write("docker-compose.yml", p.COMPOSE + extra)
        write_files(files)(p)
    return setup


def ca_root(p) -> None:
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-keyout", str(p.root / "ca.key"), "-out", str(p.root / "ca.pem"), "-days", "30",
                    "-subj", "/CN=test ACME CA"], check=True, capture_output=True)


def with_ca_root(files):
    def setup(p):
        ca_root(p)
        write_files(files)(p)
    return setup


CASES = [
    Case("settings.domains", False, "a service's host names",
         write_files(toml('domains = { web = ["app.example.com", "www.example.com"] }'))),
    Case("settings.domains", True, "a URL, not a host name, at the line of domains",
         write_files(toml('proxy_image = "caddy:2.8.4-alpine"', 'domains = { web = ["https://app.example.com"] }')),
         expect=at_line(3, "is not a bare host name")),
    Case("settings.domains", True, "a wildcard",
         write_files(toml('domains = { web = ["*.example.com"] }')), expect=at_line(2, "is a wildcard")),
    Case("settings.domains", True, "a single label",
         write_files(toml('domains = { web = ["localhost"] }')), expect=at_line(2, "is not a DNS host name")),
    Case("settings.domains", True, "an IP address",
         write_files(toml('domains = { web = ["203.0.113.5"] }')), expect=at_line(2, "is an IP address")),
    Case("settings.domains", True, "one name for two services",
         services(MORE_SERVICES, toml('domains = { web = ["app.example.com"], admin = ["APP.example.com"] }')),
         expect=at_line(2, "is named for both web and admin")),
    Case("settings.domains", True, "a service the compose file does not start",
         write_files(toml('domains = { wbe = ["app.example.com"] }')), expect=at_line(2, "(did you mean 'web'?)")),
    Case("settings.domains", True, "a service with two exposed ports and no x-berth.http_port",
         services(MORE_SERVICES, toml('domains = { api = ["api.example.com"] }')),
         expect=at_line(2, "cannot tell which port of api speaks HTTP")),
    Case("settings.domains", False, "a service that exposes one port and publishes none",
         services(MORE_SERVICES, toml('domains = { admin = ["admin.example.com"] }'))),
    Case("settings.domains", True, "a service publishing 443, which the proxy needs",
         services(MORE_SERVICES + EDGE, toml('domains = { admin = ["admin.example.com"] }')),
         expect=at_line(2, "edge publishes port 443")),
    Case("settings.domains", True, "proxy = false beside domains",
         write_files(toml("proxy = false", 'domains = { web = ["app.example.com"] }')),
         expect=at_line(3, "but proxy = false")),
    Case("settings.acme", False, "a test CA with its root certificate",
         with_ca_root(toml('domains = { web = ["app.example.com"] }', 'acme_ca = "https://10.0.0.1:14000/dir"',
                           'acme_ca_root = "ca.pem"', 'acme_email = "ops@example.com"'))),
    Case("settings.acme", True, "an http:// directory",
         write_files(toml('domains = { web = ["app.example.com"] }', 'acme_ca = "http://ca.example.com/dir"')),
         expect=at_line(3, "is not an https:// URL")),
    Case("settings.acme", True, "a root certificate file that is not one",
         write_files({"ca.pem": "not a certificate\n", **toml('domains = { web = ["app.example.com"] }',
                                                              'acme_ca_root = "ca.pem"')}),
         expect=at_line(3, "is not a PEM certificate")),
    Case("settings.acme", True, "a root certificate file that is not there",
         write_files(toml('domains = { web = ["app.example.com"] }', 'acme_ca_root = "nowhere.pem"')),
         expect=at_line(3, "cannot be read")),
    Case("settings.acme", True, "an email that is not one",
         write_files(toml('domains = { web = ["app.example.com"] }', 'acme_email = "ops"')),
         expect=at_line(3, "is not an email address")),
    Case("settings.acme", True, "ACME settings without domains",
         write_files(toml('acme_email = "ops@example.com"')), expect=at_line(2, "but no domains")),
]
test_rule = rule_test(CASES, offline=True)


def test_domains_that_are_not_a_table_of_lists_are_refused_at_load(project):
    from berth.configuration.target import load_target
    from berth.errors import UsageError

    project.write("berth.toml", '[defaults]\ndomains = ["app.example.com"]\n')
    with pytest.raises(UsageError) as caught:
        load_target(project.root)
    assert "'domains' must name each service's public host names" in caught.value.what
    assert 'domains = { web = ["app.example.com", "www.example.com"] }' in caught.value.fix


def test_domains_turn_the_proxy_on_and_name_how_it_gets_certificates(project):
    from berth.configuration.target import load_target

    project.write("berth.toml", '[defaults]\ndomains = { web = "app.example.com" }\nhttps_redirect = false\n')
    target = load_target(project.root)
    assert target.proxy and target.domains == {"web": ("app.example.com",)}
    assert target.tls is not None and target.tls.redirect is False and target.tls.ca == ""
    project.write("berth.toml", "[defaults]\n")
    assert not load_target(project.root).proxy and load_target(project.root).tls is None
