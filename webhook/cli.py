"""`agent-workspace-webhook serve | review | agent`: the terminal adaptor."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

from webhook.cluster import ClusterError
from webhook.settings import Settings, SettingsError, load_settings


class UsageError(Exception):
    """Bad input on the command line; printed as one line, exit status 2."""


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    if getattr(args, "store", None):
        overrides["store"] = args.store
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from webhook import logs
    from webhook.app import create_app
    from webhook.certs import write_certificates
    from webhook.tls import ReloadingCertificate

    settings = _settings(args)
    logs.configure(args.log_level)
    log = logs.logger()
    certificate: ReloadingCertificate | None = None
    if args.insecure:
        if args.cert_file or args.key_file:
            raise UsageError("--insecure serves plain HTTP: drop --cert-file/--key-file, or drop --insecure")
        log.warning("serving plain HTTP (--insecure): for local debugging only, an API server will not call it")
    else:
        if bool(args.cert_file) != bool(args.key_file):
            raise UsageError("give both --cert-file and --key-file, or neither (throw-away certificates)")
        if args.cert_file:
            cert, key = Path(args.cert_file), Path(args.key_file)
        else:
            files = write_certificates(
                Path(tempfile.mkdtemp(prefix="agent-workspace-webhook-")), [args.host, "localhost"]
            )
            cert, key = files.cert, files.key
            log.info("throw-away certificates", extra={"fields": {"ca_file": str(files.ca), "cert_file": str(cert)}})
        for path in (cert, key):
            if not path.is_file():
                raise UsageError(f"{path}: no such file")
        certificate = ReloadingCertificate(cert, key)
    app = create_app(settings, certificate=certificate)
    sock = _listen(args.host, args.port, args.reuse_port)
    # Logged once the port is bound, so that "serving" means connections are being queued.
    log.info(
        "serving",
        extra={
            "fields": {
                "host": args.host,
                "port": sock.getsockname()[1],
                "tls": certificate is not None,
                "store": settings.store,
                "naming_mode": settings.naming_mode,
            }
        },
    )
    config = uvicorn.Config(
        app, log_config=None, access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_seconds
    )
    # Everything loaded so far (the Kubernetes client alone is tens of thousands of objects) lives
    # as long as the process: keep it out of the collector's full passes, which showed up as tail
    # latency under load.
    gc.collect()
    gc.freeze()
    if certificate is not None:
        # uvicorn builds a fresh SSLContext from file names; ours is reloaded on rotation instead.
        config.load()
        config.ssl = certificate.context
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the socket says it is TCP, and without it Nagle and delayed ACKs add 40 ms to every answer.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several processes on one port, the kernel spreading connections between them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def cmd_review(args: argparse.Namespace) -> int:
    from webhook.admit import admit, make_context
    from webhook.cluster import make_store
    from webhook.review import ReviewError, decode_patch, parse_review

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
    try:
        outcome = asyncio.run(admit(review.request, make_context(settings, store)))
    finally:
        store.close()
    response = outcome.answer["response"]
    if args.output == "json":
        print(json.dumps(outcome.answer, indent=2))
    else:
        print(f"uid:      {response['uid']}")
        print(f"allowed:  {str(response['allowed']).lower()}")
        if outcome.pvc:
            print(f"pvc:      {outcome.namespace}/{outcome.pvc} ({outcome.ensured})")
        if "status" in response:
            print(f"message:  {response['status']['message']}")
        for warning in response.get("warnings", []):
            print(f"warning:  {warning}")
        patch = decode_patch(outcome.answer)
        print("patch:" + ("    (none)" if not patch else ""))
        for op in patch:
            print("  " + json.dumps(op))
    return 0 if response["allowed"] else 1


def cmd_agent(args: argparse.Namespace) -> int:
    from webhook.admit import make_context
    from webhook.agents import AgentError, extract_agent
    from webhook.cluster import MemoryStore
    from webhook.naming import NamingError, choose_workspace, validate_service

    ctx = make_context(_settings(args), MemoryStore())
    try:
        agent = extract_agent(args.github_app, ctx.rules)
        workspace = None
        if args.service is not None:
            service = validate_service(args.service, "--service")
            workspace = choose_workspace(service, agent, None, ctx.policy)
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
    import yaml

    from webhook.certs import overlay, secret_manifest, service_hosts, write_certificates
    from webhook.devcluster import MANIFESTS, load_yaml

    out = Path(args.out)
    hosts = service_hosts(args.service, args.namespace, args.host)
    files = write_certificates(out, hosts, days=args.days)
    (out / "secret.yaml").write_text(
        yaml.safe_dump(secret_manifest(args.secret, args.namespace, files), sort_keys=False)
    )
    config = next(doc for doc in load_yaml(MANIFESTS / "webhook.yaml") if doc["kind"] == "MutatingWebhookConfiguration")
    kustomization = overlay(MANIFESTS.parent, out, files, config["metadata"]["name"], len(config["webhooks"]))
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    print(f"wrote {files.ca}, {files.cert}, {files.key} (valid {args.days} days for {', '.join(hosts)})")
    print(f"wrote {out / 'secret.yaml'} (Secret {args.namespace}/{args.secret}) and {out / 'kustomization.yaml'}")
    print(f"install with: kubectl apply -k {out}")
    return 0


def cmd_workspaces(args: argparse.Namespace) -> int:
    from kubernetes import client

    from webhook.cluster import ClusterError, api_client
    from webhook.workspaces import report, rows

    api = api_client(_settings(args))
    core = client.CoreV1Api(api)
    try:
        if args.namespace:
            response = core.list_namespaced_persistent_volume_claim(args.namespace, _preload_content=False)
        else:
            response = core.list_persistent_volume_claim_for_all_namespaces(_preload_content=False)
    except Exception as exc:
        raise ClusterError(f"cannot list PersistentVolumeClaims: {' '.join(str(exc).split())[:300]}") from None
    finally:
        api.close()
    print(report(rows(json.loads(cast(Any, response).data)["items"])))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from webhook import demo

    return demo.run(wait=not args.exit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-workspace-webhook",
        description="Mutating admission webhook that gives every agent its own workspace PVC.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook (HTTPS; throw-away certificates unless given)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--cert-file", help="PEM serving certificate")
    serve.add_argument("--key-file", help="PEM private key of --cert-file")
    serve.add_argument("--insecure", action="store_true", help="plain HTTP, for local debugging only")
    serve.add_argument("--store", choices=["kube", "memory"], help="where PVCs live (default: WEBHOOK_STORE, kube)")
    serve.add_argument("--reuse-port", action="store_true", help="share the port with other processes (SO_REUSEPORT)")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=cmd_serve)

    review = sub.add_parser("review", help="answer an AdmissionReview exactly as /mutate would")
    review.add_argument("file", help="AdmissionReview JSON file, or - for standard input")
    review.add_argument("-o", "--output", choices=["text", "json"], default="text")
    review.add_argument("--cluster", action="store_true", help="use the Kubernetes API instead of an in-memory store")
    review.set_defaults(func=cmd_review)

    agent = sub.add_parser("agent", help="print the agent name and workspace PVC for a GitHub App")
    agent.add_argument("github_app", metavar="GITHUB_APP")
    agent.add_argument("--service", help="the service, to print the PVC name")
    agent.add_argument("-o", "--output", choices=["text", "json"], default="text")
    agent.set_defaults(func=cmd_agent)

    certs = sub.add_parser("certs", help="make a CA, a serving certificate, its Secret and a kustomize overlay")
    certs.add_argument("--out", default="certs/generated", help="directory to write (default certs/generated)")
    certs.add_argument("--namespace", default="agent-workspace-webhook")
    certs.add_argument("--service", default="agent-workspace-webhook")
    certs.add_argument("--secret", default="agent-workspace-webhook-tls")
    certs.add_argument("--host", action="append", default=["127.0.0.1"], help="extra DNS name or IP (repeatable)")
    certs.add_argument("--days", type=int, default=365)
    certs.set_defaults(func=cmd_certs)

    workspaces = sub.add_parser("workspaces", help="list agent workspaces and the legacy shared ones left")
    workspaces.add_argument("--namespace", "-n", help="one namespace (default: all)")
    workspaces.set_defaults(func=cmd_workspaces)

    demo = sub.add_parser("demo", help="local control plane + webhook + three agents' runs, then wait for Ctrl-C")
    demo.add_argument("--exit", action="store_true", help="tear everything down after the table instead of waiting")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (UsageError, SettingsError, ClusterError) as exc:
        print(f"agent-workspace-webhook {args.command}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
