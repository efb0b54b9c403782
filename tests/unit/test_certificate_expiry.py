"""The serving certificate's notAfter as server/expiry.py reads it (for the expiry gauge) is the
one `cryptography` reads, whichever time encoding the certificate uses."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent_workspace_webhook.certificates import certificate_pem, issue_serving, new_authority
from agent_workspace_webhook.server.expiry import not_after


def self_signed(not_before: datetime.datetime, until: datetime.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dated")])
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(until)
    return builder.sign(key, hashes.SHA256())


UTC = datetime.UTC


@pytest.mark.parametrize(
    "until",
    [
        datetime.datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC),  # UTCTime
        datetime.datetime(1960, 12, 31, 23, 59, 59, tzinfo=UTC),  # UTCTime: 60 is 1960 (RFC 5280)
        datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC),  # GeneralizedTime (from 2050 on)
    ],
)
def test_not_after_is_the_certificate_s(until: datetime.datetime) -> None:
    cert = self_signed(datetime.datetime(1955, 1, 1, tzinfo=UTC), until)
    assert not_after(certificate_pem(cert)) == until.timestamp() == cert.not_valid_after_utc.timestamp()


def test_a_chain_file_gives_its_first_certificate_the_one_served() -> None:
    ca = new_authority(days=3650)
    _, leaf = issue_serving(ca, ["127.0.0.1"], days=30)
    assert not_after(certificate_pem(leaf) + certificate_pem(ca.cert)) == leaf.not_valid_after_utc.timestamp()


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",  # truncated
    ],
)
def test_what_is_no_certificate_is_a_value_error(pem: bytes) -> None:
    with pytest.raises(ValueError):
        not_after(pem)
