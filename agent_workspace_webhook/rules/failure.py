"""The one failure an admission raises: a code (the HTTP status the API server shows whoever
created the object) and a message naming the object, the field, the cause and the fix.
admission/admit.answer_failure turns it into the answer in one place: `ours` tells the
webhook's or the Kubernetes API's failure (an error) from the request's fault (a denial).

Its kinds name where a failure comes from, nothing more: FactsError and NamingError (the rules,
400), Denial (an admission step's check), ClusterError (a Kubernetes call, ours)."""

from __future__ import annotations

from typing import ClassVar


class AdmissionFailure(Exception):
    ours: ClassVar[bool] = False  # the request's fault, unless a kind says otherwise
    default_code: ClassVar[int] = 400

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code
