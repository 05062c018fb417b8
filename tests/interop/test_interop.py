#!/usr/bin/python3
"""Interop test: a Python gRPC client, built only from proto/, drives cebusd.

Proves that the wire API is usable from any language with stock gRPC tooling:
the stubs are generated here with protoc and grpc_python_plugin, and nothing
from the C client library is used. TLS and mTLS handshakes use
grpc.ssl_channel_credentials against cebusd started with certificates made
here with the openssl command.

Run with Debian's interpreter (/usr/bin/python3, python3-grpcio and
python3-protobuf). Environment, as set by CTest (interop_python):
  CEBUS_TEST_DATABASE_URL  libpq conninfo of a throwaway PostgreSQL (dbname=postgres)
  CEBUS_TEST_CEBUSD        path of the cebusd binary
  CEBUS_TEST_SOURCE_DIR    source tree (for proto/)
  CEBUS_TEST_BUILD_DIR     build tree (unused; the stubs go to a temp dir)

Prints "interop: N passed, M failed" last and exits non-zero on any failure.
"""

import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CEBUS_TEST_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", ".."))
PROTO_DIR = os.path.join(SOURCE_DIR, "proto")
DATABASE_URL = os.environ.get("CEBUS_TEST_DATABASE_URL", "")
CEBUSD = os.environ.get("CEBUS_TEST_CEBUSD", "")
PSQL = shutil.which("psql", path="/usr/bin:" + os.environ.get("PATH", "")) or "psql"
PROTOC = shutil.which("protoc", path="/usr/bin:" + os.environ.get("PATH", "")) or "protoc"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"

RPC_TIMEOUT = 10.0        # seconds, every unary call
STREAM_DEADLINE = 15.0    # seconds, waiting for the matching events
START_DEADLINE = 20.0     # seconds, cebusd printing its listen line
STOP_DEADLINE = 15.0      # seconds, cebusd exiting after SIGTERM

PROTOS = [
    "cloudevents.proto",
    "cebus/v1/eventbus.proto",
    "cebus/v1/admin.proto",
    "grpc/health/v1/health.proto",
]

# Shared state, filled by the setup steps and read by the later tests.
S = {}


def log(msg):
    print(msg, flush=True)


# --- Stubs -------------------------------------------------------------------

def generate_stubs(out):
    """Runs protoc into out and imports the generated modules."""
    cmd = [PROTOC, "-I", PROTO_DIR, "-I", "/usr/include",
           "--python_out=" + out, "--grpc_python_out=" + out,
           "--plugin=protoc-gen-grpc_python=" + GRPC_PYTHON_PLUGIN] + PROTOS
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("protoc failed (%d): %s" % (r.returncode, r.stderr))
    # Regular packages for our own protos.
    for d in ("cebus", "cebus/v1", "grpc/health", "grpc/health/v1"):
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)

    import grpc
    # "grpc" is already the grpcio package; the generated health stubs import
    # grpc.health.v1, so let that package also look in the generated tree.
    grpc.__path__.append(os.path.join(out, "grpc"))

    import cloudevents_pb2
    from cebus.v1 import eventbus_pb2, eventbus_pb2_grpc, admin_pb2, admin_pb2_grpc
    from grpc.health.v1 import health_pb2, health_pb2_grpc
    S.update(grpc=grpc, ce=cloudevents_pb2, eb=eventbus_pb2, eb_grpc=eventbus_pb2_grpc,
             adm=admin_pb2, adm_grpc=admin_pb2_grpc, health=health_pb2,
             health_grpc=health_pb2_grpc)


# --- Database and server -----------------------------------------------------

def conninfo_with_dbname(conninfo, dbname):
    if re.search(r"(^|\s)dbname\s*=", conninfo):
        return re.sub(r"(^|\s)dbname\s*=\s*\S+", r"\1dbname=" + dbname, conninfo)
    return conninfo + " dbname=" + dbname


def psql(sql):
    r = subprocess.run([PSQL, DATABASE_URL, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql %r failed (%d): %s" % (sql, r.returncode, r.stderr.strip()))


def spawn_cebusd(work, args, name):
    """Starts cebusd on the test database with args; returns (proc, port, log path)."""
    env = dict(os.environ)
    env.update(CEBUS_DATABASE_URL=conninfo_with_dbname(DATABASE_URL, S["dbname"]),
               CEBUS_ADMIN_KEY=S["admin_key"], CEBUS_LOG_LEVEL="info")
    env.pop("CEBUS_LISTEN", None)
    stderr_path = os.path.join(work, name + ".log")
    stderr = open(stderr_path, "wb")
    proc = subprocess.Popen([CEBUSD, "--listen", "127.0.0.1:0", "--metrics-listen",
                             "127.0.0.1:0"] + args, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    stderr.close()

    lines = queue.Queue()

    def drain():  # keeps reading so cebusd never blocks on a full pipe
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + START_DEADLINE
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise RuntimeError("cebusd printed no listen line within %.0fs" % START_DEADLINE)
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            raise RuntimeError("cebusd exited before listening (rc=%s)" % proc.wait(5))
        m = re.match(r"^cebusd: listening on (\S+):(\d+)$", line)
        if m:
            return proc, int(m.group(2)), stderr_path


def stop_cebusd(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("cebusd did not exit within %.0fs of SIGTERM" % STOP_DEADLINE)
    assert rc == 0, "cebusd exit code %d" % rc


def start_cebusd(work):
    dbname = "cebus_interop_%d_%s" % (os.getpid(), secrets.token_hex(4))
    psql('CREATE DATABASE "%s"' % dbname)
    S["dbname"] = dbname
    S["admin_key"] = "interop-admin-" + secrets.token_hex(16)  # 46 characters
    S["work"] = work
    proc, port, log_path = spawn_cebusd(work, [], "cebusd")
    S.update(proc=proc, port=port, cebusd_log=log_path)
    grpc = S["grpc"]
    # No HTTP proxy from the environment may stand between us and 127.0.0.1.
    S["channel"] = grpc.insecure_channel("127.0.0.1:%d" % S["port"],
                                         options=[("grpc.enable_http_proxy", 0)])
    grpc.channel_ready_future(S["channel"]).result(timeout=RPC_TIMEOUT)
    S["admin"] = S["adm_grpc"].AdminStub(S["channel"])
    S["bus_stub"] = S["eb_grpc"].EventBusStub(S["channel"])
    S["health_stub"] = S["health_grpc"].HealthStub(S["channel"])


# --- TLS ---------------------------------------------------------------------

OPENSSL = shutil.which("openssl", path="/usr/bin:" + os.environ.get("PATH", "")) or "openssl"


def make_certificates(d):
    """Two CAs, a server certificate (127.0.0.1, localhost) and a client
    certificate from each, made with the openssl command."""
    def run(*args):
        r = subprocess.run([OPENSSL] + list(args), cwd=d, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca1", "ca2"):
        run("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
            "-subj", "/CN=" + ca)
    leaves = [("server1", "ca1", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n"),
              ("client1", "ca1", "extendedKeyUsage=clientAuth\n"),
              ("client2", "ca2", "extendedKeyUsage=clientAuth\n")]
    for name, ca, ext in leaves:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")


def tls_file(name):
    with open(os.path.join(S["certs"], name), "rb") as f:
        return f.read()


def tls_channel(port, ca, client=None, server_name=None):
    grpc = S["grpc"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls_file(ca + ".crt"),
        private_key=tls_file(client + ".key") if client else None,
        certificate_chain=tls_file(client + ".crt") if client else None)
    options = [("grpc.enable_http_proxy", 0)]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel("127.0.0.1:%d" % port, creds, options=options)


def tls_server(args, name):
    if "certs" not in S:
        S["certs"] = os.path.join(S["work"], "certs")
        os.mkdir(S["certs"])
        make_certificates(S["certs"])
    c = S["certs"]
    proc, port, log_path = spawn_cebusd(
        S["work"], ["--tls-cert-file", os.path.join(c, "server1.crt"),
                    "--tls-key-file", os.path.join(c, "server1.key")] + args, name)
    S.setdefault("extra_procs", []).append(proc)
    return proc, port, log_path


def health_over(channel):
    h = S["health"]
    return S["health_grpc"].HealthStub(channel).Check(h.HealthCheckRequest(service=""),
                                                       timeout=RPC_TIMEOUT)


def expect_unavailable(channel, what):
    grpc = S["grpc"]
    try:
        e = code_of(lambda: health_over(channel))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, (what, e.code(), e.details())
    finally:
        channel.close()


def cebusd_log_tail(n=40):
    try:
        with open(S["cebusd_log"], "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except (KeyError, OSError):
        return ""


def auth(key):
    return [("authorization", "Bearer " + key)]


def code_of(fn):
    """Calls fn, which must fail; returns the RpcError."""
    grpc = S["grpc"]
    try:
        fn()
    except grpc.RpcError as e:
        return e
    raise AssertionError("call succeeded; an error status was expected")


# --- Events ------------------------------------------------------------------

def make_event(id_, type_, source="/shop", priority="high", text=None, binary=None,
               content_type=None, spec_version="1.0", when=None):
    ce = S["ce"]
    ev = ce.CloudEvent(id=id_, source=source, spec_version=spec_version, type=type_)
    ev.attributes["subject"].ce_string = "order/" + id_
    ev.attributes["priority"].ce_string = priority
    ts = ev.attributes["time"].ce_timestamp
    ts.seconds, ts.nanos = when if when else (1700000000, 123456000)
    if content_type:
        ev.attributes["datacontenttype"].ce_string = content_type
    if text is not None:
        ev.text_data = text
    if binary is not None:
        ev.binary_data = binary
    return ev


# --- Tests -------------------------------------------------------------------

def test_health_serving_without_key():
    h = S["health"]
    resp = S["health_stub"].Check(h.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT)
    assert resp.status == h.HealthCheckResponse.SERVING, resp


def test_admin_create_tenant():
    adm = S["adm"]
    name = "interop-" + secrets.token_hex(3)
    t = S["admin"].CreateTenant(adm.CreateTenantRequest(name=name, display_name="Interop"),
                                metadata=auth(S["admin_key"]), timeout=RPC_TIMEOUT)
    assert t.name == name, t
    assert t.display_name == "Interop", t
    assert not t.disabled, t
    assert t.create_time.seconds > 1600000000, t
    S["tenant"] = name


def test_admin_create_tenant_admin_key():
    adm = S["adm"]
    r = S["admin"].CreateApiKey(
        adm.CreateApiKeyRequest(tenant=S["tenant"], role=adm.ROLE_TENANT_ADMIN,
                                description="python interop"),
        metadata=auth(S["admin_key"]), timeout=RPC_TIMEOUT)
    assert r.secret, r
    assert r.key.tenant == S["tenant"], r
    assert r.key.role == adm.ROLE_TENANT_ADMIN, r
    assert r.key.id and r.secret.startswith(r.key.id), r.key
    assert not r.key.revoked
    S["key"] = r.secret


def test_admin_create_bus_with_tenant_key():
    adm = S["adm"]
    b = S["admin"].CreateBus(adm.CreateBusRequest(name="orders"),
                             metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    assert b.tenant == S["tenant"], b
    assert b.name == "orders", b
    assert b.retention_hours == 168, b
    assert b.dedup_window_seconds == 300, b
    S["bus"] = "orders"


PATTERN = {"source": ["/shop"],
           "type": [{"prefix": "com.example.order."}],
           "priority": ["high"]}


def test_create_rule_with_subscription_target():
    eb = S["eb"]
    req = eb.CreateRuleRequest(bus=S["bus"], name="order-rule", pattern=json.dumps(PATTERN),
                               description="orders from the shop",
                               targets=[eb.Target(subscription=eb.SubscriptionTarget(
                                   name="order-sub"))])
    rule = S["bus_stub"].CreateRule(req, metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    assert rule.name == "order-rule", rule
    assert rule.enabled, rule
    assert json.loads(rule.pattern) == PATTERN, rule.pattern
    assert len(rule.targets) == 1, rule
    assert rule.targets[0].WhichOneof("kind") == "subscription", rule
    assert rule.targets[0].subscription.name == "order-sub", rule
    S["rule"] = rule


def test_subscribe_receives_matching_events_only():
    eb, grpc = S["eb"], S["grpc"]
    order_json = json.dumps({"total": 142.5, "customer": {"country": "FR"}, "items": [1, 2]})
    blob = bytes(range(256)) + b"\x00\xff"
    events = [
        make_event("m1", "com.example.order.created", text=order_json,
                   content_type="application/json"),
        make_event("n1", "com.example.user.created", text="{}",
                   content_type="application/json"),                 # wrong type
        make_event("m2", "com.example.order.shipped", binary=blob,
                   content_type="application/octet-stream", when=(1700000001, 5)),
        make_event("n2", "com.example.order.created", source="/other",
                   text="{}", content_type="application/json"),       # wrong source
        make_event("n3", "com.example.order.created", priority="low",
                   binary=b"x"),                                      # wrong extension
        make_event("m3", "com.example.order.cancelled", text='{"reason": "café ☕"}',
                   content_type="application/json"),
    ]
    matching = [e for e in events if e.id.startswith("m")]

    stream = S["bus_stub"].Subscribe(
        eb.SubscribeRequest(bus=S["bus"], subscription="order-sub",
                            start=eb.START_POSITION_EARLIEST),
        metadata=auth(S["key"]), timeout=STREAM_DEADLINE + RPC_TIMEOUT)
    got = queue.Queue()

    def reader():
        try:
            for msg in stream:
                got.put(msg)
        except grpc.RpcError as e:
            got.put(e)
        got.put(None)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        resp = S["bus_stub"].PutEvents(eb.PutEventsRequest(bus=S["bus"], events=events),
                                       metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
        assert resp.failed_count == 0, resp
        assert len(resp.results) == len(events), resp
        seqs = [r.sequence for r in resp.results]
        for r in resp.results:
            assert r.code == 0 and r.message == "", r
        assert all(s > 0 for s in seqs), seqs
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        want_seq = {e.id: s for e, s in zip(events, seqs)}

        received = []
        deadline = time.monotonic() + STREAM_DEADLINE
        while len(received) < len(matching):
            left = deadline - time.monotonic()
            assert left > 0, "timed out; received %s" % [m.event.id for m in received]
            try:
                msg = got.get(timeout=left)
            except queue.Empty:
                continue
            assert msg is not None, "stream ended early"
            assert not isinstance(msg, grpc.RpcError), "stream failed: %s %s" % (
                msg.code(), msg.details())
            received.append(msg)
        # The stream is in sequence order and the last put event matches, so
        # any non-matching event that leaked would be among these.
        assert [m.event.id for m in received] == [e.id for e in matching], \
            [m.event.id for m in received]
        prev = 0
        for msg, sent in zip(received, matching):
            assert msg.sequence > prev, (msg.sequence, prev)
            prev = msg.sequence
            assert msg.sequence == want_seq[sent.id], (msg.sequence, want_seq)
            ev = msg.event
            assert ev.id == sent.id and ev.source == sent.source, ev
            assert ev.type == sent.type and ev.spec_version == "1.0", ev
            for name, value in sent.attributes.items():
                assert name in ev.attributes, (name, dict(ev.attributes))
                assert ev.attributes[name] == value, (name, ev.attributes[name], value)
            assert ev.attributes["time"].WhichOneof("attr") == "ce_timestamp"
            # Server-stamped attributes: the publishing tenant and receive time.
            assert ev.attributes["cebustenant"].ce_string == S["tenant"], dict(ev.attributes)
            assert ev.attributes["cebusrecvtime"].WhichOneof("attr") == "ce_timestamp"
            assert ev.attributes["cebusrecvtime"].ce_timestamp.seconds >= 1700000000
            assert set(ev.attributes) == set(sent.attributes) | {"cebustenant",
                                                                 "cebusrecvtime"}, \
                sorted(ev.attributes)
            assert ev.WhichOneof("data") == sent.WhichOneof("data"), ev
            if sent.WhichOneof("data") == "text_data":
                assert ev.text_data == sent.text_data, ev.text_data
                assert json.loads(ev.text_data) == json.loads(sent.text_data)
            else:
                assert ev.binary_data == sent.binary_data, ev.binary_data
        assert received[1].event.binary_data == blob
        assert json.loads(received[0].event.text_data)["customer"]["country"] == "FR"

        # A later, live event still arrives on the open stream.
        live = make_event("m4", "com.example.order.created", text='{"live": true}',
                          content_type="application/json")
        resp = S["bus_stub"].PutEvents(
            eb.PutEventsRequest(bus=S["bus"], events=[make_event(
                "n4", "com.example.other", text="{}"), live]),
            metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
        assert resp.failed_count == 0, resp
        assert resp.results[0].sequence > seqs[-1], resp
        assert resp.results[1].sequence > resp.results[0].sequence, resp
        msg = got.get(timeout=STREAM_DEADLINE)
        assert msg is not None and not isinstance(msg, grpc.RpcError), msg
        assert msg.event.id == "m4", msg.event.id
        assert msg.sequence == resp.results[1].sequence, (msg.sequence, resp)
    finally:
        stream.cancel()
        t.join(RPC_TIMEOUT)
    assert not t.is_alive(), "stream reader did not end after cancel"


def test_durable_subscription_ack():
    """A durable stream (subscription, no start) through grpcio: deliveries
    carry ack_id, attempt and ack_deadline; Ack answers not_applied."""
    eb = S["eb"]
    rule = eb.CreateRuleRequest(bus=S["bus"], name="durable-rule",
                                pattern=json.dumps({"type": ["com.example.durable"]}),
                                targets=[eb.Target(subscription=eb.SubscriptionTarget(
                                    name="durable-sub", ack_deadline_seconds=60))])
    S["bus_stub"].CreateRule(rule, metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    resp = S["bus_stub"].PutEvents(
        eb.PutEventsRequest(bus=S["bus"], events=[
            make_event("d1", "com.example.durable", text="{}"),
            make_event("d2", "com.example.durable", text="{}")]),
        metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    assert resp.failed_count == 0, resp
    seqs = [r.sequence for r in resp.results]
    stream = S["bus_stub"].Subscribe(
        eb.SubscribeRequest(bus=S["bus"], subscription="durable-sub"),
        metadata=auth(S["key"]), timeout=STREAM_DEADLINE + RPC_TIMEOUT)
    try:
        got = [next(stream), next(stream)]
    finally:
        stream.cancel()
    assert [m.sequence for m in got] == seqs, ([m.sequence for m in got], seqs)
    for m in got:
        assert len(m.ack_id) == 28 and m.attempt == 1, m
        assert m.ack_deadline.seconds > 1700000000, m.ack_deadline
    ack = eb.AckRequest(bus=S["bus"], subscription="durable-sub",
                        ack_ids=[m.ack_id for m in got])
    resp = S["bus_stub"].Ack(ack, metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    assert list(resp.not_applied) == [], resp
    resp = S["bus_stub"].Ack(ack, metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    assert list(resp.not_applied) == [0, 1], resp


def test_missing_key_is_unauthenticated():
    eb, adm, grpc = S["eb"], S["adm"], S["grpc"]
    put = eb.PutEventsRequest(bus=S["bus"], events=[make_event("u1", "com.example.order.x")])
    e = code_of(lambda: S["bus_stub"].PutEvents(put, timeout=RPC_TIMEOUT))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
    assert "authorization" in e.details(), e.details()
    e = code_of(lambda: S["admin"].CreateTenant(adm.CreateTenantRequest(name="nokey"),
                                                timeout=RPC_TIMEOUT))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
    e = code_of(lambda: S["bus_stub"].PutEvents(put, metadata=auth("cb_not-a-real-key"),
                                                timeout=RPC_TIMEOUT))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())


def test_bad_spec_version_is_per_entry_invalid_argument():
    eb = S["eb"]
    bad = make_event("b1", "com.example.order.created", spec_version="0.3")
    good = make_event("g1", "com.example.other")
    resp = S["bus_stub"].PutEvents(eb.PutEventsRequest(bus=S["bus"], events=[bad, good]),
                                   metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    assert len(resp.results) == 2, resp
    assert resp.failed_count == 1, resp
    r0 = resp.results[0]
    assert r0.code == 3, r0                       # INVALID_ARGUMENT
    assert r0.sequence == 0, r0
    assert "events[0].spec_version" in r0.message, r0.message
    assert resp.results[1].code == 0 and resp.results[1].sequence > 0, resp.results[1]


def test_unknown_bus_is_not_found():
    eb, grpc = S["eb"], S["grpc"]
    put = eb.PutEventsRequest(bus="no-such-bus", events=[make_event("x1", "com.example.a")])
    e = code_of(lambda: S["bus_stub"].PutEvents(put, metadata=auth(S["key"]),
                                                timeout=RPC_TIMEOUT))
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert "no-such-bus" in e.details(), e.details()
    sub = S["bus_stub"].Subscribe(eb.SubscribeRequest(bus="no-such-bus", pattern="{}"),
                                  metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
    e = code_of(lambda: next(iter(sub)))
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())


def test_tls_handshake():
    adm, h = S["adm"], S["health"]
    proc, port, log_path = tls_server([], "cebusd-tls")
    ch = tls_channel(port, "ca1")
    try:
        assert health_over(ch).status == h.HealthCheckResponse.SERVING
        r = S["adm_grpc"].AdminStub(ch).ListTenants(adm.ListTenantsRequest(),
                                                    metadata=auth(S["admin_key"]),
                                                    timeout=RPC_TIMEOUT)
        assert S["tenant"] in [t.name for t in r.tenants], r
    finally:
        ch.close()
    named = tls_channel(port, "ca1", server_name="localhost")
    try:
        assert health_over(named).status == h.HealthCheckResponse.SERVING
    finally:
        named.close()
    expect_unavailable(tls_channel(port, "ca2"), "server certificate from another CA")
    expect_unavailable(tls_channel(port, "ca1", server_name="other.example"), "another name")
    expect_unavailable(S["grpc"].insecure_channel("127.0.0.1:%d" % port,
                                                  options=[("grpc.enable_http_proxy", 0)]),
                       "plaintext to a TLS server")
    stop_cebusd(proc)
    with open(log_path, "r", errors="replace") as f:
        assert "PRIVATE KEY" not in f.read()


def test_mtls_handshake():
    eb, h = S["eb"], S["health"]
    proc, port, _ = tls_server(["--tls-client-ca-file", os.path.join(S["certs"], "ca1.crt")],
                               "cebusd-mtls")
    expect_unavailable(tls_channel(port, "ca1"), "no client certificate")
    expect_unavailable(tls_channel(port, "ca1", client="client2"), "client of another CA")
    ch = tls_channel(port, "ca1", client="client1")
    try:
        assert health_over(ch).status == h.HealthCheckResponse.SERVING
        resp = S["eb_grpc"].EventBusStub(ch).PutEvents(
            eb.PutEventsRequest(bus=S["bus"], events=[make_event("tls-1", "com.example.tls")]),
            metadata=auth(S["key"]), timeout=RPC_TIMEOUT)
        assert resp.failed_count == 0 and resp.results[0].sequence > 0, resp
    finally:
        ch.close()
    stop_cebusd(proc)


def test_sigterm_exits_zero():
    S["channel"].close()
    stop_cebusd(S["proc"])


TESTS = [
    test_health_serving_without_key,
    test_admin_create_tenant,
    test_admin_create_tenant_admin_key,
    test_admin_create_bus_with_tenant_key,
    test_create_rule_with_subscription_target,
    test_subscribe_receives_matching_events_only,
    test_durable_subscription_ack,
    test_missing_key_is_unauthenticated,
    test_bad_spec_version_is_per_entry_invalid_argument,
    test_unknown_bus_is_not_found,
    test_tls_handshake,
    test_mtls_handshake,
    test_sigterm_exits_zero,
]


# --- Runner ------------------------------------------------------------------

def main():
    passed = failed = 0
    started = time.monotonic()
    if not DATABASE_URL or not CEBUSD:
        log("interop: CEBUS_TEST_DATABASE_URL and CEBUS_TEST_CEBUSD must be set")
        log("interop: 0 passed, 1 failed")
        return 1
    work = tempfile.mkdtemp(prefix="cebus-interop-")
    try:
        try:
            gen = os.path.join(work, "gen")
            os.mkdir(gen)
            generate_stubs(gen)
            start_cebusd(work)
            log("interop: cebusd on port %d, database %s" % (S["port"], S["dbname"]))
        except Exception:
            traceback.print_exc()
            log(cebusd_log_tail())
            log("interop: setup failed")
            failed += 1
        else:
            for t in TESTS:
                t0 = time.monotonic()
                try:
                    t()
                except Exception:
                    failed += 1
                    log("FAIL %s (%.2fs)" % (t.__name__, time.monotonic() - t0))
                    traceback.print_exc()
                    sys.stderr.flush()
                else:
                    passed += 1
                    log("ok   %s (%.2fs)" % (t.__name__, time.monotonic() - t0))
    finally:
        for proc in [S.get("proc")] + S.get("extra_procs", []):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if failed:
            log("--- cebusd log (tail) ---\n" + cebusd_log_tail())
        if "dbname" in S:
            try:
                psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % S["dbname"])
            except Exception as e:
                failed += 1
                log("FAIL drop database: %s" % e)
        shutil.rmtree(work, ignore_errors=True)
    log("interop: elapsed %.1fs" % (time.monotonic() - started))
    log("interop: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
