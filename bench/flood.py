"""Memory and descriptors under a flood of clients (bench/run --flood): 200, 800 and 5,000 clients
that trickle request headers and reconnect the moment they are dropped (tests/e2e/trickle.py),
against `serve --store memory` at the working tree and, with `--before REV`, at another
revision, side by side in one run (the revision checked out in a temporary worktree).

For each: RSS before, its peak during 15 s of flood, and after (3 s later), the peak of open
descriptors, and how many of a review a second, POSTed beside the flood, were answered. Not
timed: absolute times here are noisy, and what a flood must not do is hold memory.

    .venv/bin/python bench/flood.py --before ab2011f
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from agent_workspace_webhook.certificates import write_certificates
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import controller_pod, review
from agent_workspace_webhook.testing.tools import free_port
from agent_workspace_webhook.testing.usage import MIB, Sampler, usage

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = (200, 800, 5000)
RUN_PACKAGE = "runpy.run_module('agent_workspace_webhook', run_name='__main__', alter_sys=True)"
SECONDS = 15


@contextlib.contextmanager
def webhook(workdir: Path, tree: Path) -> Iterator[LocalWebhook]:
    """`serve --store memory` of the package in `tree`, with the default settings."""
    certs = write_certificates(workdir / "certs", ["127.0.0.1"])
    # The package from `tree`, ahead of the working directory (which `python -m` puts first).
    entry = ("-c", f"import runpy, sys; sys.path.insert(0, {str(tree)!r}); {RUN_PACKAGE}")
    hook = LocalWebhook(free_port(), {"WEBHOOK_STORE": "memory"}, certs, workdir / "serve.log", entry=entry).start()
    try:
        yield hook
    finally:
        hook.stop()


def flood(hook: LocalWebhook, clients: int) -> dict[str, float]:
    assert hook.proc is not None
    pid = hook.proc.pid
    body = review(controller_pod("bench", "5dlabs-rex"))
    for _ in range(20):  # warm: what every admission loads
        hook.review(body)
    before = usage(pid)
    command = [sys.executable, "-m", "tests.e2e.trickle", str(hook.port), str(hook.ca_file)]
    command += ["--clients", str(clients), "--seconds", str(SECONDS), "--source", "127.0.0.2"]
    answered = asked = 0
    with Sampler(pid) as sampled:
        pressure = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        while pressure.poll() is None:
            asked += 1
            with contextlib.suppress(Exception):
                answered += bool(hook.review(body, timeout=5).get("allowed"))
            time.sleep(1)
        load = json.loads(pressure.communicate()[0])
    time.sleep(3)
    after = usage(pid)
    return {
        "clients": clients,
        "connects": load["connects"],
        "rss_before": before.rss / MIB,
        "rss_peak": sampled.peak_rss / MIB,
        "rss_after": after.rss / MIB,
        "fds_before": before.fds,
        "fds_peak": sampled.peak_fds,
        "answered": answered,
        "asked": asked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a revision to run beside the working tree")
    args = parser.parse_args()
    trees = [("after", ROOT)]
    with tempfile.TemporaryDirectory(prefix="flood-") as scratch:
        if args.before:
            worktree = Path(scratch) / "before"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.before], cwd=ROOT, check=True)
            trees.insert(0, (f"before ({args.before})", worktree))
        try:
            print("tree                  clients  connects  RSS before  peak  after MiB  fds before  peak  answered")
            for clients in CLIENTS:
                for name, tree in trees:
                    workdir = Path(tempfile.mkdtemp(dir=scratch))
                    with webhook(workdir, tree) as hook:
                        row = flood(hook, clients)
                    print(
                        f"{name:<20}  {clients:>7}  {row['connects']:>8.0f}  {row['rss_before']:>10.0f}  "
                        f"{row['rss_peak']:>4.0f}  {row['rss_after']:>9.0f}  {row['fds_before']:>10.0f}  "
                        f"{row['fds_peak']:>4.0f}  {row['answered']:.0f}/{row['asked']:.0f}",
                        flush=True,
                    )
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
