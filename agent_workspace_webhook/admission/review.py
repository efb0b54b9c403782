"""AdmissionReview v1 on the wire: the request parsed into a typed model, and the typed answers
(allowed, patched, denied, error: one constructor per decision) that become the response. No I/O.

Two definitions of the request, kept equal by tests/unit/test_review.py: the pydantic models are
the schema (the OpenAPI document shows them) and judge whatever the fast decoder refuses, so that
every refusal says what it always said; msgspec's structs decode a well-formed review in one pass
in C (orjson then pydantic took twice as long: bench/README.md)."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

API_VERSION = "admission.k8s.io/v1"


class ReviewError(ValueError):
    """The body is not a usable AdmissionReview; answered with HTTP 400 and this one line."""


# Bounds on what is echoed into answers and logs: Kubernetes' own limits (a uid is 36 characters,
# a name at most 253, a namespace 63), with room to spare.
Short = Annotated[str, Field(max_length=253)]


class GroupVersionKind(BaseModel):
    model_config = ConfigDict(extra="ignore")
    group: Short = ""
    version: Short
    kind: Short

    def __str__(self) -> str:
        return f"{self.group}/{self.version} {self.kind}" if self.group else f"{self.version} {self.kind}"


class AdmissionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    uid: str = Field(min_length=1, max_length=128)
    kind: GroupVersionKind
    namespace: Short | None = None
    name: Short | None = None
    operation: str = Field(default="CREATE", max_length=16)
    dry_run: bool = Field(default=False, alias="dryRun")
    # Any JSON: a non-mapping is denied by admit with a message, not rejected here.
    object: Any = None


class AdmissionReview(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    api_version: str = Field(alias="apiVersion")
    kind: str
    request: AdmissionRequest


# The same request as msgspec structs: what parse_review returns and admit reads.
_Short = Annotated[str, msgspec.Meta(max_length=253)]


class Kind(msgspec.Struct, frozen=True):
    version: _Short
    kind: _Short
    group: _Short = ""

    def __str__(self) -> str:
        return f"{self.group}/{self.version} {self.kind}" if self.group else f"{self.version} {self.kind}"


class Request(msgspec.Struct, frozen=True):
    uid: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    kind: Kind
    namespace: _Short | None = None
    name: _Short | None = None
    operation: Annotated[str, msgspec.Meta(max_length=16)] = "CREATE"
    dry_run: bool = msgspec.field(default=False, name="dryRun")
    object: Any = None


class Review(msgspec.Struct, frozen=True):
    api_version: Literal["admission.k8s.io/v1"] = msgspec.field(name="apiVersion")
    kind: Literal["AdmissionReview"]
    request: Request


_DECODE = msgspec.json.Decoder(Review).decode


def parse_review(body: bytes) -> Review:
    """Parse a request body; ReviewError with one line saying what is wrong and where."""
    try:
        return _DECODE(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        pass
    # Refused by the strict decoder: pydantic says why, as it always did (or, for what it coerces,
    # such as a dryRun of "true", accepts it).
    accepted = _validate(body).model_dump(by_alias=True)
    try:
        return msgspec.convert(accepted, Review)
    except msgspec.ValidationError as exc:  # the two definitions disagree (test_review.py): still a 400
        raise ReviewError(f"AdmissionReview: {exc}") from None


def _validate(body: bytes) -> AdmissionReview:
    try:
        data = orjson.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ReviewError(f"request body is not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(data, dict):
        raise ReviewError(f"request body must be a JSON object (an AdmissionReview), not {type(data).__name__}")
    if data.get("kind") != "AdmissionReview":
        raise ReviewError(f"body is not an AdmissionReview: kind is {data.get('kind')!r}")
    if data.get("apiVersion") != API_VERSION:
        raise ReviewError(f"AdmissionReview apiVersion must be {API_VERSION!r}, got {data.get('apiVersion')!r}")
    try:
        return AdmissionReview.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ReviewError(f"AdmissionReview field {where}: {first['msg']}{more}") from None


class Status(BaseModel):
    code: int
    message: str


class AdmissionResponse(BaseModel):
    uid: str
    allowed: bool
    patch_type: Literal["JSONPatch"] | None = Field(default=None, alias="patchType")
    patch: str | None = Field(default=None, description="the JSON patch, base64-encoded")
    status: Status | None = Field(default=None, description="why not allowed: HTTP-style code and message")
    warnings: list[str] | None = None


class AdmissionReviewAnswer(BaseModel):
    """The answer's shape, for the OpenAPI document (Response.to_review builds it, faster)."""

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


# The decisions, as the logs and the metrics' `decision` label name them; the constructors below
# have the same names.
Decision = Literal["allowed", "patched", "denied", "error"]


class Response(msgspec.Struct, frozen=True):
    """The webhook's answer to one AdmissionReview; made only by the four functions below. A
    denial's code and message reach the user; an admission's message only the logs."""

    uid: str
    decision: Decision
    code: int | None = None
    message: str | None = None
    patch: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision in ("allowed", "patched")

    def to_review(self) -> dict[str, Any]:
        """The AdmissionReview the API server expects back."""
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = binascii.b2a_base64(orjson.dumps(self.patch), newline=False).decode()
        if not self.allowed:
            response["status"] = {"code": self.code, "message": self.message or ""}
        if self.warnings:
            response["warnings"] = list(self.warnings)
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}

    def encode(self) -> bytes:
        return orjson.dumps(self.to_review())


def allowed(uid: str, message: str | None = None, warnings: Sequence[str] = ()) -> Response:
    """Admitted unchanged; the message (for the logs, not the answer) says why nothing was done."""
    return Response(uid, "allowed", message=message, warnings=tuple(warnings))


def patched(uid: str, patch: Sequence[dict[str, Any]], warnings: Sequence[str] = ()) -> Response:
    """Admitted with this JSON patch (admitted unchanged when it is empty)."""
    return Response(uid, "patched" if patch else "allowed", patch=tuple(patch), warnings=tuple(warnings))


def denied(uid: str, code: int, message: str) -> Response:
    """Not admitted because of the request: the message says what to fix in it."""
    return Response(uid, "denied", code, message)


def error(uid: str, code: int, message: str) -> Response:
    """Not admitted because the webhook could not do its part (the Kubernetes API failed, a bug)."""
    return Response(uid, "error", code, message)
