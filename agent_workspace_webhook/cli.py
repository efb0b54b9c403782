"""`agent-workspace-webhook serve | review | agent | certs | workspaces | demo`: the terminal
adaptor. Each command imports only what it runs (inside its function): `serve` never loads the
developer tooling, and `agent` or `review` no web server, certificates or Kubernetes client
(tests/test_layout.py checks it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, get_args

from agent_workspace_webhook.arguments import port, positive
from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.setting_values import LogLevel
from agent_workspace_webhook.settings import Settings, SettingsError, load_settings
from agent_workspace_webhook.version import version


class UsageError(Exception):
    """Bad input on the command line; printed as one line, exit status 2."""


EXIT_STATUS = (
    "exit status: 0 done; 1 a failure (the Kubernetes API refused or did not answer, a review was "
    "denied); 2 bad input (an option, a file, a setting: the one line on stderr names it and the fix)"
)
LOG_LEVELS = get_args(LogLevel)


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    for name in ("store", "client_ca_file", "metrics_port", "log_level"):  # flags win over the environment
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from agent_workspace_webhook import logs
    from agent_workspace_webhook.server.serve import ServeError, serve

    settings = _settings(args)
    logs.configure(settings.log_level)
    try:
        serve(
            settings,
            host=args.host,
            port=args.port,
            cert_file=args.cert_file,
            key_file=args.key_file,
            insecure=args.insecure,
            reuse_port=args.reuse_port,
        )
    except ServeError as exc:  # what was asked cannot be served: one line, like any bad input
        raise UsageError(str(exc)) from None
    return 0


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"--namespace-labels: {pair!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def cmd_review(args: argparse.Namespace) -> int:
    from agent_workspace_webhook.admission.admit import admit, make_context
    from agent_workspace_webhook.admission.review import ReviewError, parse_review
    from agent_workspace_webhook.kube.factory import make_store
    from agent_workspace_webhook.kube.memory import MemoryStore

    settings = _settings(args, store="kube" if args.cluster else "memory")
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror}") from None
    try:
        review = parse_review(body)
    except ReviewError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    store = make_store(settings)
    if args.namespace_labels is not None and isinstance(store, MemoryStore):
        store.labels_everywhere = _labels(args.namespace_labels)
    try:
        response, record = asyncio.run(admit(review.request, make_context(settings, store)))
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps(response.to_review(), indent=2))
    else:
        print(f"uid:      {response.uid}")
        print(f"allowed:  {str(response.allowed).lower()}")
        if record.pvc:
            print(f"pvc:      {record.namespace}/{record.pvc} ({record.pvc_action})")
        if not response.allowed:
            print(f"message:  {response.message}")
        for warning in response.warnings:
            print(f"warning:  {warning}")
        print("patch:" + ("    (none)" if not response.patch else ""))
        for op in response.patch:
            print("  " + json.dumps(op))
    return 0 if response.allowed else 1


def cmd_agent(args: argparse.Namespace) -> int:
    from agent_workspace_webhook.admission.context import naming_rules
    from agent_workspace_webhook.rules.agents import AgentError, extract_agent
    from agent_workspace_webhook.rules.workspace import NamingError, choose_workspace, validate_service

    rules, policy = naming_rules(_settings(args))
    try:
        agent = extract_agent(args.github_app, rules)
        workspace = None
        if args.service is not None:
            service = validate_service(args.service, "--service")
            workspace = choose_workspace(service, agent, None, policy)
    except (AgentError, NamingError) as exc:
        raise UsageError(str(exc)) from None
    result: dict[str, Any] = {"agent": agent, "pvc": workspace.pvc if workspace else None}
    if workspace and workspace.prefer_existing:
        result["legacy_pvc_if_present"] = workspace.prefer_existing
    if args.output == "json":
        print(json.dumps(result))
    else:
        print(f"agent: {agent}")
        if workspace:
            print(f"pvc:   {workspace.pvc}")
            if workspace.prefer_existing:
                print(f"       ({workspace.prefer_existing} instead, if it exists: {agent} is the legacy_owner)")
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from agent_workspace_webhook.ops.ca import CAError, Step
    from agent_workspace_webhook.ops.certs import write_install_bundle

    try:
        _, lines = write_install_bundle(
            Path(args.out),
            namespace=args.namespace,
            service=args.service,
            secret=args.secret,
            extra_hosts=args.host,
            days=args.days,
            api_server_client=args.api_server_client,
            step=Step.ROTATE if args.rotate_ca else Step.DROP if args.drop_old_ca else Step.KEEP,
        )
    except CAError as exc:  # the files in --out, not the command line: a failure
        print(f"agent-workspace-webhook certs: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        raise UsageError(
            f"--out {args.out}: cannot write there ({exc.strerror or exc}); give a writable directory"
        ) from None
    print("\n".join(lines))
    return 0


def cmd_workspaces(args: argparse.Namespace) -> int:
    from agent_workspace_webhook.ops import workspace_commands as commands
    from agent_workspace_webhook.ops.lifecycle import PlanError

    settings = _settings(args)
    try:
        if args.action == "restore":
            return commands.restore(
                settings, args.target_namespace, args.service, args.agent,
                generation=args.generation, released=args.released, dry_run=args.dry_run,
            )  # fmt: skip
        if args.action == "prune":
            return commands.prune(settings, args.namespace, args.keep, args.yes)
        return commands.show(settings, args.namespace)
    except PlanError as exc:
        raise UsageError(str(exc)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from agent_workspace_webhook.testing.demo import run
    except ImportError:  # the container image leaves the developer tooling out
        raise UsageError(
            "the demo is not in this installation (the container image leaves it out): "
            "pip install agent-workspace-webhook, or run it from a checkout"
        ) from None
    return run(wait=not args.exit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-workspace-webhook",
        description="Mutating admission webhook that gives every agent its own workspace PVC.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook (HTTPS; throw-away certificates unless given)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8443)
    serve.add_argument("--cert-file", help="PEM serving certificate")
    serve.add_argument("--key-file", help="PEM private key of --cert-file")
    serve.add_argument("--insecure", action="store_true", help="plain HTTP, for local debugging only")
    serve.add_argument(
        "--client-ca-file", help="require client certificates that chain to this CA (WEBHOOK_CLIENT_CA_FILE)"
    )
    serve.add_argument(
        "--metrics-port",
        type=port,
        help="plain-HTTP port for probes and /metrics, 0: off (WEBHOOK_METRICS_PORT)",
    )
    serve.add_argument("--store", choices=["kube", "memory"], help="where PVCs live (default: WEBHOOK_STORE, kube)")
    serve.add_argument("--reuse-port", action="store_true", help="share the port with other processes (SO_REUSEPORT)")
    serve.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, help="default: WEBHOOK_LOG_LEVEL, else INFO")
    serve.set_defaults(func=cmd_serve)

    review = sub.add_parser("review", help="answer an AdmissionReview exactly as /mutate would")
    review.add_argument("file", help="AdmissionReview JSON file, or - for standard input")
    review.add_argument("-o", "--output", choices=["text", "json"], default="text")
    review.add_argument("--cluster", action="store_true", help="use the Kubernetes API instead of an in-memory store")
    review.add_argument(
        "--namespace-labels",
        metavar="K=V,...",
        help="offline: the labels of the review's namespace, checked against WEBHOOK_NAMESPACE_SELECTOR "
        "(without it, the namespace counts as in scope)",
    )
    review.set_defaults(func=cmd_review)

    agent = sub.add_parser("agent", help="print the agent name and workspace PVC for a GitHub App")
    agent.add_argument("github_app", metavar="GITHUB_APP")
    agent.add_argument("--service", help="the service, to print the PVC name")
    agent.add_argument("-o", "--output", choices=["text", "json"], default="text")
    agent.set_defaults(func=cmd_agent)

    certs = sub.add_parser("certs", help="serving certificate from the CA kept in --out, its Secret, an overlay")
    certs.add_argument("--out", default="certs/generated", help="directory to write (default certs/generated)")
    certs.add_argument("--namespace", default="agent-workspace-webhook")
    certs.add_argument("--service", default="agent-workspace-webhook")
    certs.add_argument("--secret", default="agent-workspace-webhook-tls")
    certs.add_argument("--host", action="append", default=["127.0.0.1"], help="extra DNS name or IP (repeatable)")
    certs.add_argument("--days", type=positive, default=365, help="certificates' validity, not the CA's (default 365)")
    rotation = certs.add_mutually_exclusive_group()  # certs/README.md, Rotation
    rotation.add_argument("--rotate-ca", action="store_true", help="step 1: new CAs, trusted beside the old")
    rotation.add_argument("--drop-old-ca", action="store_true", help="step 2: trust the new CAs only")
    certs.add_argument(
        "--api-server-client",
        action="store_true",
        help="also a client certificate from the client CA kept in OUT/api-server, a kubeconfig and "
        "AdmissionConfiguration for the API server, and the manifests/mtls Component in the kustomization",
    )
    certs.set_defaults(func=cmd_certs)

    workspaces = sub.add_parser("workspaces", help="each workspace's generations and retained copies; restore, prune")
    workspaces.add_argument("--namespace", "-n", help="one namespace (default: all)")
    workspaces.set_defaults(func=cmd_workspaces, action="show")
    actions = workspaces.add_subparsers(dest="action")
    restore = actions.add_parser("restore", help="make an earlier life of a workspace current, as a new generation")
    restore.add_argument("target_namespace", metavar="NAMESPACE")
    restore.add_argument("service", metavar="SERVICE")
    restore.add_argument("agent", metavar="AGENT")
    restore.add_argument("--generation", type=int, help="clone this generation (it still exists)")
    restore.add_argument("--released", metavar="PV", help="bind this Released volume (a deleted generation's)")
    restore.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    prune = actions.add_parser("prune", help="delete retained copies beyond the N newest per workspace")
    prune.add_argument("--keep", type=int, required=True, metavar="N")
    prune.add_argument("--yes", action="store_true", help="do it (without: print what would go)")
    # SUPPRESS: without it the subcommand's default (None, every namespace) would overwrite a
    # `workspaces -n NS` given before it, and a prune meant for NS would delete everywhere.
    prune.add_argument("--namespace", "-n", default=argparse.SUPPRESS, help="one namespace (default: all)")

    demo = sub.add_parser("demo", help="local control plane + webhook + three agents' runs, then wait for Ctrl-C")
    demo.add_argument("--exit", action="store_true", help="tear everything down after the table instead of waiting")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (UsageError, SettingsError) as exc:
        print(f"agent-workspace-webhook {args.command}: {exc}", file=sys.stderr)
        return 2
    except ClusterError as exc:
        print(f"agent-workspace-webhook {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head`: the reader has all it wanted; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
