"""The certificate validity reader, against certificates the real openssl makes (EC and RSA keys, UTCTime
and GeneralizedTime dates, v1 and v3, chains), and refusals of what is not one."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from berth.model.certificate import CertificateError, validity

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make(tmp_path, *args: str) -> str:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", "/CN=app.example.com", *args], check=True, capture_output=True)
    return cert.read_text()


def dates(tmp_path, pem: str) -> tuple[datetime, datetime]:
    path = tmp_path / "read.pem"
    path.write_text(pem)
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-startdate", "-enddate"],
                         check=True, capture_output=True, text=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())

    def parse(text: str) -> datetime:
        return datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)
    return parse(values["notBefore"]), parse(values["notAfter"])


@pytest.mark.parametrize("args", [
    ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-days", "90"],
    ["-newkey", "rsa:2048", "-days", "1"],
    ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-days", "40000"],  # after 2049: GeneralizedTime
], ids=["ec-90-days", "rsa-1-day", "generalized-time"])
def test_validity_is_what_openssl_reads(tmp_path, args):
    pem = make(tmp_path, *args)
    assert validity(pem) == dates(tmp_path, pem)


def test_the_first_certificate_of_a_chain_is_read(tmp_path):
    leaf = make(tmp_path, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-days", "7")
    other = make(tmp_path, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-days", "3650")
    assert validity(leaf + other)[1] == dates(tmp_path, leaf)[1]
    assert validity(leaf + other)[1] != validity(other)[1]


@pytest.mark.parametrize("text", [
    "", "hello", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",  # an empty SEQUENCE
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",  # a length past the end
])
def test_what_is_not_a_certificate_is_refused(text):
    with pytest.raises(CertificateError):
        validity(text)


def test_a_truncated_certificate_is_refused(tmp_path):
    pem = make(tmp_path, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-days", "9")
    body = "".join(pem.splitlines()[1:-1])
    cut = "-----BEGIN CERTIFICATE-----\n" + body[:60] + "\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError):
        validity(cut)
