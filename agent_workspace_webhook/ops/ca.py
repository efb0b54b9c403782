"""The CAs that `certs` keeps in its --out directory, so that the next run issues certificates
that what is in force already trusts, and their rotation in two steps. Two are kept alike:

    ca.crt   what the API server trusts (the caBundle): the CA that signs, and during a rotation
             the previous CA after it
    ca.key   the signing CA's key, mode 0600: secret, never in the cluster
    api-server/client-ca.crt, client-ca.key   with --api-server-client, the same for the CA of
             the API server's client certificate, which the webhook trusts (the Secret's
             client-ca.crt)

A rotation is under way while the .crt holds more than the signing CA: `rotate` starts it (a
new CA, both trusted), `drop` ends it (the new CA only). Each refusal names the file and the fix.
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


@dataclass(frozen=True)
class Place:
    """Where a kept CA's files are, and who trusts its .crt (for the messages)."""

    directory: Path
    stem: str = "ca"
    what: str = "CA"
    trusted_by: str = "the caBundle"
    in_force: str = IN_FORCE  # where to find the certificates trusted now, should the .crt be lost
    switched: str = "every replica serves the new certificate"  # when a rotation may end

    @property
    def crt(self) -> Path:
        return self.directory / f"{self.stem}.crt"

    @property
    def key(self) -> Path:
        return self.directory / f"{self.stem}.key"


def serving_place(out: Path) -> Place:
    return Place(out)


def client_place(directory: Path) -> Place:
    """The API server's client CA, in `directory` (api-server/ of --out)."""
    return Place(
        directory,
        "client-ca",
        "client CA",
        "the webhook (the Secret's client-ca.crt)",
        "the client-ca.crt of the installed Secret, base64-decoded",
        "every API server presents the new client certificate (api-server/ copied, API servers restarted)",
    )


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


def check_signer(cert: x509.Certificate, place: Place, now: datetime.datetime) -> None:
    """Refuse a signer that is no CA or has expired."""
    path = place.crt
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CAError(
            f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate: restore {path.name} and "
            f"{place.key.name} from your backup, or run with --rotate-ca to make a new CA ({ROTATION})"
        )
    if cert.not_valid_after_utc <= now:
        raise CAError(
            f"{path}: the CA expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
            f"run with --rotate-ca to make a new CA ({ROTATION})"
        )


def read_bundle(path: Path, in_force: str = IN_FORCE) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CAError(
            f"{path}: cannot read it ({exc.strerror}): make it readable, or restore it from your backup"
        ) from None
    except ValueError:
        raise CAError(
            f"{path}: not a PEM certificate: restore it from your backup, or write {in_force} into it "
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


def load(place: Place, now: datetime.datetime) -> KeptCA | None:
    """The CA kept at `place`, checked: None when there is none (neither file)."""
    crt, key_file = place.crt, place.key
    if not crt.exists() and not key_file.exists():
        return None
    if not crt.exists():
        raise CAError(
            f"{crt}: missing beside {key_file}: restore it from your backup, or write {place.in_force} into it"
        )
    if not key_file.exists():
        raise CAError(
            f"{key_file}: missing, the key of {crt} (older `certs` did not keep it): restore it "
            f"from your backup, or run with --rotate-ca to make a new {place.what} ({ROTATION})"
        )
    bundle, key = read_bundle(crt, place.in_force), read_key(key_file)
    signer = signer_of(key, bundle)
    if signer is None:
        raise CAError(
            f"{key_file} is not the key of {crt} (nor of any certificate in it): restore the pair from "
            f"your backup, or run with --rotate-ca to make a new {place.what} ({ROTATION})"
        )
    check_signer(signer, place, now)
    return KeptCA(Authority(key, signer), [signer, *(c for c in bundle if c is not signer)], made=False)


def next_ca(place: Place, step: Step, now: datetime.datetime) -> KeptCA:
    """The CA this run signs with and the certificates its .crt holds after `step`; refuses a
    step the files at `place` do not allow."""
    crt = place.crt
    if step is Step.ROTATE:
        if not crt.exists():
            raise CAError(
                f"--rotate-ca: no {place.what} to rotate in {place.directory} ({crt} missing): run without --rotate-ca"
            )
        previous = read_bundle(crt, place.in_force)  # no key needed: the previous CA signs nothing more
        if len(previous) > 1:
            raise CAError(
                f"--rotate-ca: {crt} holds {len(previous)} CAs, a rotation is under way: finish it with "
                f"--drop-old-ca once {place.switched} ({ROTATION})"
            )
        made = new_authority(CA_DAYS, place.stem)
        return KeptCA(made, [made.cert, *previous], made=True)
    kept = load(place, now)
    if step is Step.DROP:
        if kept is None:
            raise CAError(f"--drop-old-ca: no {place.what} in {place.directory} ({crt} missing): nothing to drop")
        if not kept.rotating:
            raise CAError(
                f"--drop-old-ca: {crt} holds only the {place.what} in use (no rotation under way): nothing to drop"
            )
        return KeptCA(kept.signer, [kept.signer.cert], made=False)
    if kept is None:
        made = new_authority(CA_DAYS, place.stem)
        return KeptCA(made, [made.cert], made=True)
    return kept


def write(place: Place, step: Step, ca: KeptCA) -> None:
    """The CA's files after `step`, none when the kept CA stays as it is. The key first: should
    the run stop between the two, the .crt still holds what is trusted."""
    if step is Step.KEEP and not ca.made:
        return
    place.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds private keys
    if ca.made:
        write_private(place.key, key_pem(ca.signer.key))
    write_public(place.crt, b"".join(certificate_pem(cert) for cert in ca.trusted))


def describe(place: Place, step: Step, ca: KeptCA) -> list[str]:
    """What the run did with the CA, for the terminal."""
    crt, key_file, what = place.crt, place.key, place.what
    until = f"{ca.signer.cert.not_valid_after_utc:%Y-%m-%d}"
    secret = f"its key {key_file} (mode 0600): keep it secret and backed up, never in the cluster"
    if step is Step.ROTATE:
        return [
            f"made a new {what} (valid until {until}), {secret}",
            f"{crt} ({place.trusted_by}) trusts the new {what} and the previous one: apply, wait until "
            f"{place.switched}, then run again with --drop-old-ca and apply",
        ]
    if step is Step.DROP:
        return [
            f"{crt} ({place.trusted_by}) trusts only the {what} in use now, valid until {until}: the rotation is done"
        ]
    if ca.made:
        return [f"made a {what} {crt} (valid until {until}), {secret}; the next run reuses it"]
    during = " and the previous one (a rotation is under way: --drop-old-ca ends it)" if ca.rotating else ""
    return [f"kept the {what} {crt}{during}, valid until {until}: {place.trusted_by} in force stays valid"]


def step_for(place: Place, step: Step) -> Step:
    """`step` for a CA that may be younger than the rotation under way (a client CA first made
    after --rotate-ca): with nothing to rotate or drop at `place`, it is kept (or made)."""
    if not place.crt.exists():
        return Step.KEEP
    if step is Step.DROP and len(read_bundle(place.crt, place.in_force)) == 1:
        return Step.KEEP
    return step
