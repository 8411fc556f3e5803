"""What a PEM certificate says about its validity: the first certificate's notBefore and notAfter.

`berth doctor` reads the certificates berth's proxy holds for its domains. Python's ssl module decodes a
certificate only during a verified handshake, and a full X.509 library is a compiled dependency for two
dates: the validity sits at a fixed place in the DER (TBSCertificate: [0] version, serial, signature
algorithm, issuer, then validity), so this walks the outer structure to it and reads its two times.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)


class CertificateError(ValueError):
    """Not a PEM certificate berth can read the validity of."""


def validity(pem: str) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of the first certificate in `pem`, as aware UTC datetimes."""
    match = _PEM.search(pem)
    if not match:
        raise CertificateError("no PEM certificate in the text")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("the PEM certificate is not base64") from None
    tag, body, _ = _element(der, 0)  # Certificate
    if tag != 0x30:
        raise CertificateError("not an X.509 certificate")
    tag, tbs, _ = _element(der, body[0])  # TBSCertificate
    if tag != 0x30:
        raise CertificateError("not an X.509 certificate")
    position, end = tbs
    fields = []
    while position < end and len(fields) < 5:
        tag, (start, stop), position = _element(der, position)
        fields.append((tag, start, stop))
    if fields and fields[0][0] != 0xA0:  # a v1 certificate has no version field
        fields.insert(0, (0xA0, 0, 0))
    if len(fields) < 5 or fields[4][0] != 0x30:
        raise CertificateError("the certificate has no validity")
    _, start, stop = fields[4]
    tag_a, (a0, a1), next_at = _element(der, start)
    tag_b, (b0, b1), _ = _element(der, next_at)
    return _time(tag_a, der[a0:a1]), _time(tag_b, der[b0:b1])


def _element(der: bytes, at: int) -> tuple[int, tuple[int, int], int]:
    """The DER element at `at`: its tag, (start, end) of its content, and where the next element starts."""
    if at + 2 > len(der):
        raise CertificateError("the certificate is cut short")
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or at + count > len(der):
            raise CertificateError("the certificate has a length berth cannot read")
        length, at = int.from_bytes(der[at:at + count], "big"), at + count
    if at + length > len(der):
        raise CertificateError("the certificate is cut short")
    return tag, (at, at + length), at + length


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii", "replace")
    formats = {0x17: "%y%m%d%H%M%SZ", 0x18: "%Y%m%d%H%M%SZ"}  # UTCTime, GeneralizedTime
    if tag not in formats:
        raise CertificateError("the certificate's validity is not a time")
    try:
        return datetime.strptime(text, formats[tag]).replace(tzinfo=timezone.utc)
    except ValueError:
        raise CertificateError(f"the certificate's validity {text!r} is not a time berth can read") from None
