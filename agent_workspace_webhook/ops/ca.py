"""The CA that `certs` keeps in its --out directory, so that the next run issues a serving
certificate the caBundle in force already trusts, and its rotation in two steps.

    ca.crt   what the API server trusts (the caBundle): the CA that signs, and during a rotation
             the previous CA after it
    ca.key   the signing CA's key, mode 0600: secret, never in the cluster

A rotation is under way while ca.crt holds more than the signing CA: `rotate` starts it (a new
CA, both trusted), `drop` ends it (the new CA only). Each refusal names the file and the fix.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from agent_workspace_webhook.certificates import (
    Authority,
    IssuerKey,
    certificate_pem,
    key_pem,
    new_authority,
    write_private,
    write_public,
)

ROTATION = "certs/README.md, Rotation"
# A new CA's validity, as kubeadm's: it is kept, and only its serving certificates are renewed.
CA_DAYS = 3650
# The caBundle in force, for a lost ca.crt: it is what the API server trusts now.
IN_FORCE = "the caBundle of the installed MutatingWebhookConfiguration, base64-decoded"


class CAError(Exception):
    """The kept CA cannot be used as asked: one line naming the file and the fix."""


class Step(Enum):
    KEEP = "keep"  # the CA in --out, or a new one in an empty --out
    ROTATE = "rotate"  # --rotate-ca: a new CA, trusted beside the previous one
    DROP = "drop"  # --drop-old-ca: trust the new CA only


@dataclass(frozen=True)
class KeptCA:
    signer: Authority
    trusted: list[x509.Certificate]  # ca.crt: the signer first
    made: bool  # a new CA this run

    @property
    def rotating(self) -> bool:
        return len(self.trusted) > 1


def _spki(public: CertificatePublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def signer_of(key: IssuerKey, bundle: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate of `bundle` whose public key is `key`'s."""
    ours = _spki(key.public_key())
    return next((cert for cert in bundle if _spki(cert.public_key()) == ours), None)


def check_signer(cert: x509.Certificate, path: Path, now: datetime.datetime) -> None:
    """Refuse a signer that is no CA or has expired."""
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CAError(
            f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate: restore ca.crt and "
            f"ca.key from your backup, or run with --rotate-ca to make a new CA ({ROTATION})"
        )
    if cert.not_valid_after_utc <= now:
        raise CAError(
            f"{path}: the CA expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
            f"run with --rotate-ca to make a new CA ({ROTATION})"
        )


def read_bundle(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CAError(
            f"{path}: cannot read it ({exc.strerror}): make it readable, or restore it from your backup"
        ) from None
    except ValueError:
        raise CAError(
            f"{path}: not a PEM certificate: restore it from your backup, or write {IN_FORCE} into it "
            f"and run with --rotate-ca ({ROTATION})"
        ) from None
    return certs


def read_key(path: Path) -> IssuerKey:
    fix = f"restore it from your backup, or run with --rotate-ca to make a new CA ({ROTATION})"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise CAError(f"{path}: cannot read it ({exc.strerror}): make it readable, or {fix}") from None
    except (ValueError, TypeError):  # TypeError: a key with a passphrase
        raise CAError(f"{path}: not an unencrypted PEM private key: {fix}") from None
    if not isinstance(key, IssuerKey):
        raise CAError(f"{path}: an {type(key).__name__}, not an EC or RSA key a CA signs with: {fix}")
    return key


def load(directory: Path, now: datetime.datetime) -> KeptCA | None:
    """The CA kept in `directory`, checked: None when there is none (neither file)."""
    crt, key_file = directory / "ca.crt", directory / "ca.key"
    if not crt.exists() and not key_file.exists():
        return None
    if not crt.exists():
        raise CAError(f"{crt}: missing beside {key_file}: restore it from your backup, or write {IN_FORCE} into it")
    if not key_file.exists():
        raise CAError(
            f"{key_file}: missing, the key of {crt} (older `certs` did not keep it): restore it "
            f"from your backup, or run with --rotate-ca to make a new CA ({ROTATION})"
        )
    bundle, key = read_bundle(crt), read_key(key_file)
    signer = signer_of(key, bundle)
    if signer is None:
        raise CAError(
            f"{key_file} is not the key of {crt} (nor of any certificate in it): restore the pair from "
            f"your backup, or run with --rotate-ca to make a new CA ({ROTATION})"
        )
    check_signer(signer, crt, now)
    return KeptCA(Authority(key, signer), [signer, *(c for c in bundle if c is not signer)], made=False)


def next_ca(directory: Path, step: Step, now: datetime.datetime) -> KeptCA:
    """The CA this run signs with and the certificates ca.crt holds after `step`; refuses a step
    the files in `directory` do not allow."""
    crt = directory / "ca.crt"
    if step is Step.ROTATE:
        if not crt.exists():
            raise CAError(f"--rotate-ca: no CA to rotate in {directory} ({crt} missing): run without --rotate-ca")
        previous = read_bundle(crt)  # the key is not needed: the previous CA signs nothing more
        if len(previous) > 1:
            raise CAError(
                f"--rotate-ca: {crt} holds {len(previous)} CAs, a rotation is under way: finish it with "
                f"--drop-old-ca once every replica serves the new certificate ({ROTATION})"
            )
        made = new_authority(CA_DAYS)
        return KeptCA(made, [made.cert, *previous], made=True)
    kept = load(directory, now)
    if step is Step.DROP:
        if kept is None:
            raise CAError(f"--drop-old-ca: no CA in {directory} ({crt} missing): nothing to drop")
        if not kept.rotating:
            raise CAError(f"--drop-old-ca: {crt} holds only the CA in use (no rotation under way): nothing to drop")
        return KeptCA(kept.signer, [kept.signer.cert], made=False)
    if kept is None:
        made = new_authority(CA_DAYS)
        return KeptCA(made, [made.cert], made=True)
    return kept


def write(directory: Path, step: Step, ca: KeptCA) -> None:
    """The CA's files after `step`, none when the kept CA stays as it is. ca.key first: should the
    run stop between the two, ca.crt still holds what is trusted."""
    if step is Step.KEEP and not ca.made:
        return
    if ca.made:
        write_private(directory / "ca.key", key_pem(ca.signer.key))
    write_public(directory / "ca.crt", b"".join(certificate_pem(cert) for cert in ca.trusted))


def describe(directory: Path, step: Step, ca: KeptCA) -> list[str]:
    """What the run did with the CA, for the terminal."""
    crt, key_file = directory / "ca.crt", directory / "ca.key"
    until = f"{ca.signer.cert.not_valid_after_utc:%Y-%m-%d}"
    secret = f"its key {key_file} (mode 0600): keep it secret and backed up, never in the cluster"
    if step is Step.ROTATE:
        return [
            f"made a new CA (valid until {until}), {secret}",
            f"{crt} (the caBundle) trusts the new CA and the previous one: apply, wait until every replica "
            f"serves the new certificate, then run again with --drop-old-ca and apply",
        ]
    if step is Step.DROP:
        return [f"{crt} (the caBundle) trusts only the CA in use now, valid until {until}: the rotation is done"]
    if ca.made:
        return [f"made a CA {crt} (valid until {until}), {secret}; the next run reuses it"]
    during = " and the previous one (a rotation is under way: --drop-old-ca ends it)" if ca.rotating else ""
    return [f"kept the CA {crt}{during}, valid until {until}: the caBundle in force stays valid"]
