"""Everything /mutate does with a request body: parse, admit (or, past WEBHOOK_MAX_IN_FLIGHT
admissions under way, answer an error at once), log one line, encode the answer. Apart from HTTP (server/app.py), so
that bench/micro.py times one admission's Python cost alone."""

from __future__ import annotations

import logging
import time

import msgspec
import orjson

from agent_workspace_webhook import logs
from agent_workspace_webhook.admission.admit import Context, admit
from agent_workspace_webhook.admission.review import ReviewError, error, parse_review
from agent_workspace_webhook.server.metrics import OTHER, Metrics


class Answer(msgspec.Struct, frozen=True):
    """What /mutate sends back (status, JSON body), and what the metrics count it under."""

    status: int
    body: bytes
    kind: str = OTHER
    operation: str = OTHER
    decision: str = "invalid"


class Mutator:
    """One AdmissionReview body in, one answer out."""

    def __init__(self, ctx: Context, metrics: Metrics) -> None:
        self.ctx, self.metrics, self.log = ctx, metrics, logs.logger()
        self.max_in_flight = ctx.settings.max_in_flight
        # Admissions under way. One event loop: a plain counter is exact, and the gauge reads it
        # when scraped, so what the metrics show is what the limit counts.
        self.in_flight = 0
        metrics.in_flight.set_function(lambda: self.in_flight)

    def invalid(self, status: int, message: str) -> Answer:
        self.log.info("rejected", extra={"fields": {"status": status, "message": message}})
        return Answer(status, orjson.dumps({"error": message}))

    async def answer(self, body: bytes, started: float) -> Answer:
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return self.invalid(400, str(exc))
        uid, kind, operation = review.request.uid, review.request.kind.kind, review.request.operation
        if self.in_flight >= self.max_in_flight:
            # Answered at once: queued, it would wait past the API server's timeout anyway.
            message = (
                f"agent-workspace-webhook is already answering {self.max_in_flight} requests "
                "(WEBHOOK_MAX_IN_FLIGHT); refused at once rather than queued past the API server's "
                "timeout: retry the create, or add replicas"
            )
            self.log.warning("overloaded", extra={"fields": {"uid": uid, "max_in_flight": self.max_in_flight}})
            return Answer(200, error(uid, 429, message).encode(), kind, operation, "error")
        self.in_flight += 1
        try:
            response, record = await admit(review.request, self.ctx)
        except Exception:  # a bug must still answer, with an error the user can report
            self.metrics.internal_errors.inc()
            self.log.exception("admission failed", extra={"fields": {"uid": uid}})
            message = f"internal error in agent-workspace-webhook (uid {uid}); see its logs"
            return Answer(200, error(uid, 500, message).encode(), kind, operation, "error")
        finally:
            self.in_flight -= 1
        if record.pvc_action == "created":
            self.metrics.pvcs_created.inc()
        elif record.pvc_action == "grown":
            self.metrics.pvcs_grown.inc()
        level = logging.WARNING if record.decision == "error" else logging.INFO
        fields = record.log_fields()
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        logs.event(level, "admission", fields)
        return Answer(200, response.encode(), kind, operation, record.decision)
