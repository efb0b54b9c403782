"""Callers that misbehave at the connection level, against a real `serve` (in-memory store) on
127.0.0.1: slow and idle clients are dropped, at the connection cap the longest-waiting
connection makes room for a newcomer, memory at the cap stays under the Deployment's limit,
mutual TLS refuses the handshake to anyone but the API server's certificate, and every log line
stays JSON (issues 10 and 23)."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from agent_workspace_webhook.certificates import CertFiles, write_certificates, write_client_certificate
from agent_workspace_webhook.server.connections import TLS_SHUTDOWN_SECONDS
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.tools import free_port
from agent_workspace_webhook.testing.usage import usage

ROOT = Path(__file__).resolve().parents[2]
BODY = (ROOT / "examples" / "rex-pod.json").read_bytes()
Start = Callable[..., LocalWebhook]
PARTIAL_HEADER = b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start `serve --store memory` with these settings; stopped by pid after the test."""
    started: list[LocalWebhook] = []
    certs = write_certificates(tmp_path / "certs", ["127.0.0.1"])

    def run(**settings: str) -> LocalWebhook:
        env = {"WEBHOOK_STORE": "memory", **{f"WEBHOOK_{k.upper()}": v for k, v in settings.items()}}
        hook = LocalWebhook(free_port(), env, certs, tmp_path / f"serve-{len(started)}.log")
        started.append(hook)
        return hook.start()

    yield run
    for hook in started:
        hook.stop()


def tls(hook: LocalWebhook, client: CertFiles | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(hook.ca_file))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def mutate(hook: LocalWebhook, client: CertFiles | None = None, timeout: float = 5) -> tuple[int, bytes, float]:
    """POST the example review on a new connection: (status, body, seconds)."""
    started = time.monotonic()
    connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=tls(hook, client), timeout=timeout)
    try:
        connection.request("POST", "/mutate", body=BODY, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        connection.close()


def slow_client(hook: LocalWebhook, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """A TLS connection (from the `source` address) that has sent half a request header."""
    raw = socket.create_connection(("127.0.0.1", hook.port), timeout=5, source_address=(source, 0))
    sock = tls(hook).wrap_socket(raw, server_hostname="127.0.0.1")
    sock.sendall(PARTIAL_HEADER)
    return sock


def closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while the connection is still open."""
    sock.settimeout(0.01)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except (TimeoutError, ssl.SSLWantReadError, BlockingIOError):
        return None
    except (ConnectionError, ssl.SSLError):
        pass
    return received


def metric(hook: LocalWebhook, reason: str) -> float:
    return hook.metrics().get(f'agent_workspace_webhook_connections_refused_total{{reason="{reason}"}}', 0.0)


def process_rss_and_fds(hook: LocalWebhook) -> tuple[int, int]:
    assert hook.proc is not None
    now = usage(hook.proc.pid)
    return now.rss, now.fds


def test_slowloris_is_dropped_within_the_timeout_and_others_are_served(start: Start) -> None:
    hook = start(request_timeout_seconds="2")
    slow = [slow_client(hook) for _ in range(50)]
    opened = time.monotonic()
    answers: dict[int, bytes] = {}
    served_meanwhile: list[float] = []
    while len(answers) < len(slow) and time.monotonic() - opened < 8:  # bounded: 2 s + margin
        for i, sock in enumerate(slow):
            if i in answers:
                continue
            with_data = closed_by_server(sock)
            if with_data is not None:
                answers[i] = with_data
                continue
            try:
                sock.sendall(b"x")  # a byte at a time keeps a naive server waiting forever
            except (ConnectionError, ssl.SSLError):
                answers[i] = b""
        if not served_meanwhile:
            status, _, seconds = mutate(hook)
            assert status == 200
            served_meanwhile.append(seconds)
        time.sleep(0.25)
    dropped_after = time.monotonic() - opened
    for sock in slow:
        sock.close()
    assert len(answers) == 50, f"{50 - len(answers)} slow connections still open after {dropped_after:.1f}s"
    assert dropped_after < 2 + 3
    assert all(
        b"408 Request Timeout" in a and b"request headers not received within 2.0s" in a for a in answers.values()
    )
    assert served_meanwhile[0] < 1.0
    assert metric(hook, "slow") == 50


def test_a_keep_alive_connection_is_dropped_a_timeout_after_its_last_answer_not_its_first(start: Start) -> None:
    """The header deadline restarts with each answer: a connection that keeps asking is served
    for longer than the timeout, and once it falls idle it is dropped one timeout later."""
    hook = start(request_timeout_seconds="1")
    connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=tls(hook), timeout=5)
    try:
        opened = time.monotonic()
        while time.monotonic() - opened < 2.5:  # 2.5 timeouts of requests, 0.4 s apart, one connection
            connection.request("POST", "/mutate", body=BODY, headers={"content-type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            time.sleep(0.4)
        last_answer = time.monotonic()
        sock = connection.sock
        assert sock is not None
        dropped = None
        while dropped is None and time.monotonic() - last_answer < 4:  # bounded: 1 s + margin
            dropped = closed_by_server(sock)
            time.sleep(0.05)
        idle = time.monotonic() - last_answer
    finally:
        connection.close()
    assert dropped is not None, "an idle keep-alive connection was not dropped"
    assert b"request headers not received within 1.0s" in dropped
    assert 0.5 < idle < 2.0
    assert metric(hook, "slow") == 1


def test_a_client_that_waits_for_100_continue_gets_it_before_it_sends_the_body(start: Start) -> None:
    """curl sends `Expect: 100-continue` with a large review: the interim answer must not be held
    back with the response's writes (server/coalesce.py), or client and server wait on each other."""
    hook = start()
    raw = socket.create_connection(("127.0.0.1", hook.port), timeout=5)
    with tls(hook).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        head = "POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        sock.sendall(f"{head}content-length: {len(BODY)}\r\nexpect: 100-continue\r\n\r\n".encode())
        interim = sock.recv(4096)  # bounded by the socket's 5 s timeout
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        sock.sendall(BODY)
        response = http.client.HTTPResponse(sock)
        response.begin()
        status, body = response.status, response.read()
    assert status == 200
    assert json.loads(body)["response"]["allowed"] is True


def test_a_body_that_trickles_in_is_cut_off(start: Start) -> None:
    hook = start(request_timeout_seconds="1")
    connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=tls(hook), timeout=5)
    connection.putrequest("POST", "/mutate")
    connection.putheader("content-type", "application/json")
    connection.putheader("content-length", str(len(BODY)))
    connection.endheaders(BODY[:10])
    started = time.monotonic()
    response = connection.getresponse()
    assert response.status == 408 and time.monotonic() - started < 3
    assert "request body not received within" in json.loads(response.read())["error"]
    connection.close()


def test_clients_that_never_start_tls_are_dropped(start: Start) -> None:
    hook = start(request_timeout_seconds="1")
    idle = [socket.create_connection(("127.0.0.1", hook.port), timeout=5) for _ in range(20)]
    deadline = time.monotonic() + 5
    open_ones = list(idle)
    while open_ones and time.monotonic() < deadline:
        open_ones = [sock for sock in open_ones if closed_by_server(sock) is None]
        time.sleep(0.1)
    for sock in idle:
        sock.close()
    assert not open_ones, f"{len(open_ones)} connections without a TLS handshake still open after 5s"


def test_at_the_cap_the_longest_waiting_connection_makes_room_for_a_new_one(start: Start) -> None:
    hook = start(max_connections="5")
    kept = [http.client.HTTPSConnection("127.0.0.1", hook.port, context=tls(hook), timeout=5) for _ in range(5)]
    for connection in kept:  # keep-alive: each holds its connection open after its answer
        connection.request("POST", "/mutate", body=BODY)
        assert connection.getresponse().read() and connection.sock is not None
    status, _, _ = mutate(hook)
    assert status == 200  # the newcomer is served ...
    assert metric(hook, "dropped") == 1 and metric(hook, "connections") == 0
    assert kept[0].sock is not None and closed_by_server(kept[0].sock) is not None  # ... the oldest made room
    for connection in kept[1:]:  # the others were left alone
        connection.request("POST", "/mutate", body=BODY)
        assert connection.getresponse().status == 200
    for connection in kept:
        connection.close()


def test_clients_that_fill_the_cap_with_trickles_cannot_lock_out_a_real_request(start: Start) -> None:
    hook = start(max_connections="20")
    slow = [slow_client(hook, source="127.0.0.2") for _ in range(20)]  # never a whole request
    kept = []
    for _ in range(20):  # each served connection stays open (keep-alive), and takes a trickler's place
        connection = http.client.HTTPSConnection("127.0.0.1", hook.port, context=tls(hook), timeout=5)
        connection.request("POST", "/mutate", body=BODY)
        assert connection.getresponse().read() and connection.sock is not None
        kept.append(connection)
    assert metric(hook, "dropped") == 20 and metric(hook, "connections") == 0
    assert all(closed_by_server(sock) is not None for sock in slow)  # aborted: no answer owed
    for connection in kept:
        connection.close()
    for sock in slow:
        sock.close()


def test_dropped_and_timed_out_clients_free_their_descriptors_at_once(start: Start) -> None:
    """A slow client that never answers the TLS close (it keeps its socket open) used to hold its
    descriptor for the 30 s TLS shutdown timeout after its 408; now for TLS_SHUTDOWN_SECONDS."""
    hook = start(request_timeout_seconds="1")
    assert mutate(hook)[0] == 200
    _, idle_fds = process_rss_and_fds(hook)
    slow = [slow_client(hook) for _ in range(30)]
    opened = time.monotonic()
    while process_rss_and_fds(hook)[1] > idle_fds + 1 and time.monotonic() - opened < 15:
        time.sleep(0.2)
    freed_after = time.monotonic() - opened
    for sock in slow:
        sock.close()
    assert metric(hook, "slow") == 30
    assert freed_after < 1 + TLS_SHUTDOWN_SECONDS + 2, f"30 dropped connections held their fds for {freed_after:.1f}s"


def test_memory_at_the_connection_cap_stays_under_the_deployment_limit(start: Start) -> None:
    deployment = yaml.safe_load((ROOT / "manifests/base/deployment.yaml").read_text())
    limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    limit_bytes = int(limit[:-2]) * 2**20
    hook = start(request_timeout_seconds="60")  # the slow clients stay for the measurement
    for _ in range(20):  # warm up: the first admissions load what every later one uses
        assert mutate(hook)[0] == 200
    idle_rss, idle_fds = process_rss_and_fds(hook)
    cap = 200  # WEBHOOK_MAX_CONNECTIONS' default, as the manifests run it
    slow = [slow_client(hook) for _ in range(cap)]
    full_rss, full_fds = process_rss_and_fds(hook)
    assert mutate(hook)[0] == 200  # one more is served: a slow one made room
    for sock in slow:
        sock.close()
    print(
        f"\nrss idle {idle_rss / 2**20:.1f} MiB, at the cap of {cap} connections {full_rss / 2**20:.1f} MiB "
        f"({(full_rss - idle_rss) / cap / 1024:.1f} KiB per connection); fds {idle_fds} -> {full_fds}; limit {limit}"
    )
    assert full_fds >= idle_fds + cap - 1
    assert full_rss < limit_bytes / 2, "sized with room for admissions in flight and the PVC cache"


# --- mutual TLS ------------------------------------------------------------------------------


def refused_handshake(hook: LocalWebhook, client: CertFiles | None) -> bool:
    """True when the TLS server will not talk to this client (TLS 1.3 reports it on first read)."""
    try:
        status, _, _ = mutate(hook, client)
    except (ssl.SSLError, ConnectionError):
        return True
    assert status in (200, 403), status
    return False


def test_mutual_tls_admits_only_the_client_ca_and_reloads_it(start: Start, tmp_path: Path) -> None:
    api_server = write_client_certificate(tmp_path / "client-a", "kube-apiserver")
    stranger = write_client_certificate(tmp_path / "client-b", "kube-apiserver")  # the same name, another CA
    client_ca = tmp_path / "client-ca.crt"
    shutil.copy(api_server.ca, client_ca)
    hook = start(client_ca_file=str(client_ca), client_names='["kube-apiserver"]', tls_reload_seconds="0.2")
    assert mutate(hook, api_server)[0] == 200
    assert refused_handshake(hook, None)
    assert refused_handshake(hook, stranger)
    assert hook.get("/healthz")[0] == 200  # kubelet's probes need no certificate: the metrics port

    tmp = tmp_path / "client-ca.tmp"  # the CA rotates: the stranger's CA replaces ours
    shutil.copy(stranger.ca, tmp)
    tmp.replace(client_ca)
    deadline = time.monotonic() + 10
    while refused_handshake(hook, stranger) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not refused_handshake(hook, stranger)
    assert refused_handshake(hook, api_server)


def test_a_certificate_with_another_name_is_refused_with_the_reason(start: Start, tmp_path: Path) -> None:
    somebody = write_client_certificate(tmp_path / "client", "somebody")
    hook = start(client_ca_file=str(somebody.ca), client_names='["kube-apiserver"]')
    status, body, _ = mutate(hook, somebody)
    assert status == 403
    assert b"client certificate names ['somebody'] are not in WEBHOOK_CLIENT_NAMES" in body
    assert metric(hook, "client_name") == 1


def test_garbage_on_the_tls_port_leaves_only_json_in_the_log(start: Start) -> None:
    hook = start()
    with socket.create_connection(("127.0.0.1", hook.port), timeout=5) as plain:
        plain.sendall(b"GET /mutate HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to the TLS port
        plain.recv(100)
    with tls(hook).wrap_socket(socket.create_connection(("127.0.0.1", hook.port)), server_hostname="127.0.0.1") as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # over TLS, but not HTTP: uvicorn logs a warning
        s.recv(100)
    deadline = time.monotonic() + 5
    while "Invalid HTTP request" not in hook.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = hook.log().splitlines()
    assert any("Invalid HTTP request" in line for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict), line


# --- what a flood can make the webhook hold ------------------------------------------------------


def test_sockets_in_their_tls_handshake_count_against_the_cap(start: Start) -> None:
    """Sockets that never send a ClientHello hold a slot each, as any connection does: past the
    cap the oldest is dropped, so descriptors stay at the cap, and a real request still gets in."""
    hook = start(max_connections="20", request_timeout_seconds="30")
    assert mutate(hook)[0] == 200
    _, idle_fds = process_rss_and_fds(hook)
    silent = [socket.create_connection(("127.0.0.1", hook.port), timeout=5, source_address=("127.0.0.2", 0))]
    silent += [socket.create_connection(("127.0.0.1", hook.port), timeout=5) for _ in range(99)]
    deadline = time.monotonic() + 5
    while metric(hook, "dropped") < 80 and time.monotonic() < deadline:
        time.sleep(0.05)
    _, fds = process_rss_and_fds(hook)
    status, _, _ = mutate(hook)
    for sock in silent:
        sock.close()
    assert metric(hook, "dropped") >= 80
    assert fds <= idle_fds + 20 + 1, f"{fds - idle_fds} descriptors for 100 silent sockets with a cap of 20"
    assert status == 200


def test_request_headers_past_the_bound_are_refused(start: Start) -> None:
    hook = start()
    sock = slow_client(hook)  # half a header sent
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        for _ in range(20):  # 80 KiB of one header, never ended
            sock.sendall(b"x" * 4096)
    deadline = time.monotonic() + 5
    while (answer := closed_by_server(sock)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sock.close()
    assert answer is not None and b"431 Request Header Fields Too Large" in answer
    assert b"request headers are larger than 65536 bytes" in answer
    assert metric(hook, "headers_too_large") == 1


def test_bodies_still_arriving_give_way_to_a_whole_request_past_the_byte_bound(start: Start) -> None:
    """Eight requests that each send 60 KiB of a 100 KiB body and stop: past the 256 KiB bound the
    biggest of them are dropped, and a whole request is admitted beside them."""
    hook = start(max_body_bytes=str(128 * 1024), max_pending_bytes=str(256 * 1024), request_timeout_seconds="30")
    head = b"POST /mutate HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 102400\r\n\r\n"
    stalled = []
    for _ in range(8):
        sock = tls(hook).wrap_socket(
            socket.create_connection(("127.0.0.1", hook.port), timeout=5, source_address=("127.0.0.2", 0)),
            server_hostname="127.0.0.1",
        )
        sock.sendall(head + b" " * 60 * 1024)
        stalled.append(sock)
    time.sleep(0.5)
    status, _, _ = mutate(hook)
    dropped = metric(hook, "dropped")
    for sock in stalled:
        sock.close()
    assert status == 200
    assert 4 <= dropped <= 8, f"{dropped} dropped: 8 x 60 KiB must fit 256 KiB with the real request"
