"""Scenario (f): `serve` as it is (the FastAPI app, the connection guard, one-write answers, the
body's limit, the admission metrics), but `Mutator.answer` gives back the answer it gave first,
for every body: nothing parsed, admitted, logged or encoded. In one run, (f)/(a) is what serve's
stack costs beside the bare one, and (b)/(f) what the admission itself costs inside it.

    python bench/fixed.py serve [the arguments of agent-workspace-webhook serve]
"""

from __future__ import annotations

import sys

from agent_workspace_webhook import cli
from agent_workspace_webhook.server.mutator import Answer, Mutator


def main() -> int:
    admit = Mutator.answer
    first: list[Answer] = []

    async def answer(self: Mutator, body: bytes, started: float) -> Answer:
        if not first:  # bench.py sends (b)'s review once before the run
            first.append(await admit(self, body, started))
        return first[0]

    Mutator.answer = answer  # type: ignore[method-assign]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
