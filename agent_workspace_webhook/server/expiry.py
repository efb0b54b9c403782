"""When a PEM certificate expires (its notAfter), read from its DER in a few lines: `serve` with
certificate files never loads `cryptography` (10 MB, 60 ms at start-up), and the ssl module has
no way to read back the certificate a context holds."""

from __future__ import annotations

import base64
import binascii
import datetime
import re

_PEM = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----(.+?)-----END", re.DOTALL)
SEQUENCE, UTC_TIME, GENERALIZED_TIME, VERSION = 0x30, 0x17, 0x18, 0xA0


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at `at`: (tag, where its contents start, where they end)."""
    if at + 2 > len(der):
        raise ValueError("truncated DER")
    tag, length, start = der[at], der[at + 1], at + 2
    if length & 0x80:  # long form: the next (length & 0x7F) bytes hold the length
        count = length & 0x7F
        length, start = int.from_bytes(der[start : start + count], "big"), start + count
    if start + length > len(der):
        raise ValueError("truncated DER")
    return tag, start, start + length


def _time(tag: int, text: str) -> datetime.datetime:
    if tag == UTC_TIME:  # YYMMDDHHMMSSZ; RFC 5280: 50-99 are 19xx
        moment = datetime.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if moment.year >= 2050:
            moment = moment.replace(year=moment.year - 100)
    elif tag == GENERALIZED_TIME:  # YYYYMMDDHHMMSSZ
        moment = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError(f"notAfter has tag {tag:#x}, not a time")
    return moment.replace(tzinfo=datetime.UTC)


def not_after_der(der: bytes) -> datetime.datetime:
    """Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... } (RFC 5280)."""
    tag, start, _ = _element(der, 0)
    tbs_tag, at, _ = _element(der, start)
    if tag != SEQUENCE or tbs_tag != SEQUENCE:
        raise ValueError("not an X.509 certificate")
    if der[at] == VERSION:
        at = _element(der, at)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        at = _element(der, at)[2]
    validity_tag, at, _ = _element(der, at)
    if validity_tag != SEQUENCE:
        raise ValueError("no validity in the certificate")
    at = _element(der, at)[2]  # notBefore
    tag, start, end = _element(der, at)
    return _time(tag, der[start:end].decode("ascii"))


def not_after(pem: bytes) -> float:
    """The notAfter of the first certificate in `pem` (a chain's leaf), in seconds since the
    epoch; ValueError when there is none to read."""
    found = _PEM.search(pem)
    if found is None:
        raise ValueError("no PEM certificate")
    try:
        der = base64.b64decode(b"".join(found.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64 in the PEM certificate: {exc}") from None
    try:
        return not_after_der(der).timestamp()
    except IndexError:  # an element running past the end
        raise ValueError("truncated DER") from None
