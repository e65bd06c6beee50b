"""PROXY protocol (enable_proxy_protocol 1|2, as Mosquitto 2.1) and Unix
domain socket listeners (`listener 0 /path`, as Mosquitto 2.0).

PROXY: the address in a v1 line or a v2 header (IPv4, IPv6, UNIX) is the
client's in the log lines and in the events the hooks publish; v2 LOCAL
keeps the socket's; a missing, malformed or wrong-version header closes
the connection without a CONNACK; proxy_protocol_v2_require_tls refuses a
header without TLS; use_identity_as_username takes the certificate's CN
from the header; a PROXY listener may be a WebSocket one (the header comes
before the HTTP upgrade) or a TLS one (before the handshake). Unix
sockets: mosquitto_pub/sub cross to TCP clients, the socket is srwxrwx---,
a stale socket left at the path is replaced and anything else there stops
start-up, and PROXY v2 works on one too."""

import json
import os
import shutil
import socket
import ssl
import stat
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
import wsraw  # noqa: E402
from brokerctl import connect_packet, read_packet, run, spawn  # noqa: E402

r = brokerctl.Results("proxy")
brokerctl.deadline(r, 120)

from brokerctl import PROXY_SIG as SIG, proxy_v2 as v2, proxy_v2_inet as v2_inet  # noqa: E402
from brokerctl import proxy_ssl_tlv as ssl_tlv  # noqa: E402


def session(port, header, client_id, family=socket.AF_INET, addr="127.0.0.1"):
    """Header + CONNECT; True when CONNACK 0 comes back."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((addr, port) if family == socket.AF_INET else addr)
    s.sendall(header + connect_packet(client_id))
    p = read_packet(s, 5)
    s.close()
    return p is not None and p[0] == 0x20 and p[1][1] == 0


def events_socket(endpoint):
    import zmq
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"client.connected")
    sub.connect(endpoint)
    return sub


def connected_event(sub, client_id, timeout=5):
    import zmq
    end = time.time() + timeout
    while time.time() < end:
        if sub.poll(int(max(1, (end - time.time()) * 1000))) and sub.getsockopt(zmq.EVENTS):
            frames = sub.recv_multipart()
            ev = json.loads(frames[1])
            if ev.get("client_id") == client_id:
                return ev
    return None


b = brokerctl.start("""listener {port} 127.0.0.1
listener {port2} 127.0.0.1
enable_proxy_protocol 1
listener {port3} 127.0.0.1
enable_proxy_protocol 2
midge_hooks_endpoint ipc://{dir}/events
""")
P1, P2 = b.ports["port2"], b.ports["port3"]
ev = events_socket("ipc://%s/events" % b.dir)
time.sleep(0.5)

r.check("v1 TCP4 header then CONNECT is accepted",
        session(P1, b"PROXY TCP4 203.0.113.7 127.0.0.1 40001 1883\r\n", "v1-four"))
r.check("v1 TCP6 header", session(P1, b"PROXY TCP6 2001:db8::7 ::1 40002 1883\r\n", "v1-six"))
r.check("v1 UNKNOWN keeps the socket's address", session(P1, b"PROXY UNKNOWN\r\n", "v1-unknown"))
r.check("v2 IPv4 header", session(P2, v2_inet("198.51.100.9", 40003), "v2-four"))
r.check("v2 IPv6 header", session(P2, v2(1, 0x21, socket.inet_pton(socket.AF_INET6, "2001:db8::9") +
                                        bytes(16) + struct.pack("!HH", 40004, 1883)), "v2-six"))
r.check("v2 LOCAL (a health check) keeps the socket's address", session(P2, v2(0, 0, b""), "v2-local"))
r.check("v2 with TLVs", session(P2, v2_inet("198.51.100.10", 40005, ssl_tlv("carol")), "v2-tlv"))
e = connected_event(ev, "v2-four")
r.check("the hooks' client.connected event carries the header's address",
        e is not None and e.get("peer_addr") == "198.51.100.9" and e.get("peer_port") == 40003, repr(e))
e = connected_event(ev, "v2-local")
r.check("... and the socket's for LOCAL", e is not None and e.get("peer_addr") == "127.0.0.1", repr(e))

for what, port, header in (
        ("no header (MQTT straight away), v1 listener", P1, b""),
        ("no header, v2 listener", P2, b""),
        ("v1 header on a v2 listener", P2, b"PROXY TCP4 203.0.113.7 127.0.0.1 40001 1883\r\n"),
        ("v2 header on a v1 listener", P1, v2_inet("198.51.100.9", 1)),
        ("v1 port out of range", P1, b"PROXY TCP4 203.0.113.7 127.0.0.1 70000 1883\r\n"),
        ("v1 line without CRLF past 107 bytes", P1, b"PROXY TCP4 " + b"1" * 120),
        ("v2 version nibble 1", P2, SIG + b"\x11\x11\x00\x0c" + bytes(12)),
        ("v2 address block too short", P2, v2(1, 0x11, bytes(8))),
        ("v2 TLV overrunning the header", P2, v2_inet("198.51.100.9", 1, b"\x20\x00\x40\x01"))):
    r.check("%s: closed without CONNACK" % what, not session(port, header, "bad"))

log = b.log_text()
r.check("log lines use the header's address",
        "'v1-four' [203.0.113.7:40001] connected" in log and "'v1-six' [2001:db8::7:40002]" in log
        and "'v2-four' [198.51.100.9:40003]" in log and "'v2-six' [2001:db8::9:40004]" in log, log[-3000:])
r.check("UNKNOWN / LOCAL log the socket's address",
        "'v1-unknown' [127.0.0.1:" in log and "'v2-local' [127.0.0.1:" in log, log[-3000:])
r.check("refusals are logged with the reason", "refused: no PROXY v1 header" in log and
        "PROXY v2: TLV overruns" in log, log[-3000:])
s = spawn(["mosquitto_sub", "-p", str(b.port), "-h", "127.0.0.1", "-t", "after", "-C", "1", "-W", "8"])
time.sleep(0.4)
run(["mosquitto_pub", "-p", str(b.port), "-h", "127.0.0.1", "-t", "after", "-m", "still"])
out, _ = s.communicate(timeout=10)
r.check("the plain listener is served throughout", out.strip() == "still", repr(out))
ev.close()
b.stop()

# proxy_protocol_v2_require_tls, require_certificate and
# use_identity_as_username from the header's SSL TLV; a PROXY WebSocket
# listener.
os.makedirs(b.dir + "-pki")
pki = pkitool.make(b.dir + "-pki", "proxy")
b = brokerctl.start("""listener {port} 127.0.0.1
enable_proxy_protocol 2
proxy_protocol_v2_require_tls true
require_certificate true
use_identity_as_username true
listener {port2} 127.0.0.1
enable_proxy_protocol 1
protocol websockets
listener {port3} 127.0.0.1
enable_proxy_protocol 2
certfile %(server)s
keyfile %(server-key)s
""" % pki)
P = b.port
r.check("require_tls: a header without TLS is refused",
        not session(P, v2_inet("192.0.2.1", 1), "no-tls"))
r.check("require_certificate: TLS without a verified certificate is refused",
        not session(P, v2_inet("192.0.2.2", 2, ssl_tlv("mallory", verified=False)), "no-cert"))
r.check("use_identity_as_username: a verified certificate without CN is refused",
        not session(P, v2_inet("192.0.2.3", 3, ssl_tlv(None)), "no-cn"))
r.check("a verified certificate with CN is accepted",
        session(P, v2_inet("192.0.2.4", 4, ssl_tlv("alice")), "with-cn"))
s = socket.create_connection(("127.0.0.1", b.ports["port2"]), timeout=5)
s.sendall(b"PROXY TCP4 192.0.2.77 127.0.0.1 4077 80\r\n" + wsraw.upgrade_request())
head = wsraw.read_http(s)
c = wsraw.Conn(s, head.split("\r\n\r\n", 1)[1].encode() if "\r\n\r\n" in head else b"")
c.send_frame(0x2, connect_packet("ws-behind-proxy"))
p = c.read_mqtt()
r.check("PROXY v1 before a WebSocket upgrade", head.startswith("HTTP/1.1 101") and p is not None
        and p[0] == 0x20, head[:100])
s.close()
# PROXY before TLS terminated by midge (a TCP-mode load balancer).
ctx = ssl.create_default_context(cafile=pki["ca"])
ctx.check_hostname = False
raw = socket.create_connection(("127.0.0.1", b.ports["port3"]), timeout=5)
raw.sendall(v2_inet("192.0.2.99", 4099))
t = ctx.wrap_socket(raw)
t.sendall(connect_packet("tls-behind-proxy"))
p = read_packet(t, 5)
r.check("PROXY v2 header, then TLS terminated by midge", p is not None and p[0] == 0x20, repr(p))
t.close()
time.sleep(0.3)
log = b.log_text()
r.check("the TLS client has the header's address", "'tls-behind-proxy' [192.0.2.99:4099]" in log,
        log[-2000:])
r.check("the CN from the header is the username",
        "'with-cn' [192.0.2.4:4] connected" in log and "user 'alice'" in log, log[-2000:])
r.check("the WebSocket client has the header's address", "'ws-behind-proxy' [192.0.2.77:4077]" in log,
        log[-2000:])
b.stop()

# Fail closed: settings midge cannot honour stop start-up with file:line.
for bad in ("listener {port} 127.0.0.1\nproxy_protocol_v2_require_tls true\n",
            "listener {port} 127.0.0.1\nenable_proxy_protocol 1\nrequire_certificate true\n",
            "listener {port} 127.0.0.1\nhttp_dir /tmp\n",
            "listener {port} 127.0.0.1\nenable_proxy_protocol 3\n"):
    try:
        x = brokerctl.start(bad)
        x.stop()
        r.check("refused at start-up: %r" % bad, False)
    except RuntimeError as err:
        r.check("refused at start-up with file:line: %r" % bad.splitlines()[1],
                "broker.conf:" in str(err), str(err)[-300:])

# ---- Unix domain sockets ------------------------------------------------
b = brokerctl.start("""listener {port} 127.0.0.1
listener 0 {dir}/mqtt.sock
listener 0 {dir}/proxied.sock
enable_proxy_protocol 2
""")
path = os.path.join(b.dir, "mqtt.sock")
# The TCP listener (what start() waits for) is bound before the sockets.
for _ in range(100):
    if os.path.exists(path) and os.path.exists(os.path.join(b.dir, "proxied.sock")):
        break
    time.sleep(0.05)
st = os.stat(path)
r.check("the Unix socket exists with mode srwxrwx--- (Mosquitto's umask 0007)",
        stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o770, oct(st.st_mode))
sub = spawn(["mosquitto_sub", "--unix", path, "-t", "u/#", "-C", "2", "-W", "8", "-v"])
time.sleep(0.5)
rc1, _, e1 = run(["mosquitto_pub", "--unix", path, "-t", "u/from-unix", "-m", "a", "-q", "1"])
rc2, _, e2 = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "u/from-tcp",
                  "-m", "b", "-q", "2"])
out, _ = sub.communicate(timeout=10)
r.check("mosquitto_sub on the Unix socket hears Unix and TCP publishers",
        out.split("\n")[:2] == ["u/from-unix a", "u/from-tcp b"], repr((out, e1, e2)))
r.check("a Unix socket client is logged with the socket's path",
        "[%s:0]" % path in b.log_text(), b.log_text()[-1500:])
r.check("PROXY v2 on a Unix socket listener: the header's address",
        session(0, v2_inet("203.0.113.50", 5050), "unix-proxied", socket.AF_UNIX,
                os.path.join(b.dir, "proxied.sock"))
        and "'unix-proxied' [203.0.113.50:5050]" in b.log_text())
r.check("missing PROXY header on a Unix socket listener is refused",
        not session(0, b"", "unix-bare", socket.AF_UNIX, os.path.join(b.dir, "proxied.sock")))
rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
r.check("the Unix socket is removed at shutdown", not os.path.exists(path))

# A stale socket (a killed broker's) is replaced; a file is not touched.
spot = os.path.dirname(pki["ca"])
stale = os.path.join(spot, "stale.sock")
old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
old.bind(stale)
old.close()
b = brokerctl.start("listener {port} 127.0.0.1\nlistener 0 %s\n" % stale)
def session_or_refused(*a):
    try:
        return session(*a)
    except OSError:  # not listening yet (a loaded machine)
        return False


for _ in range(100):
    if session_or_refused(0, b"", "after-stale", socket.AF_UNIX, stale):
        r.check("a stale socket at the path is replaced", True)
        break
    time.sleep(0.05)
else:
    r.check("a stale socket at the path is replaced", False, b.log_text()[-500:])
b.stop()
regular = os.path.join(spot, "file.sock")
with open(regular, "w") as f:
    f.write("not a socket\n")
try:
    # the Unix listener alone: no TCP port to answer while the broker
    # is still on its way out (a TCP listener opened first raced this)
    brokerctl.start("listener 0 %s\n" % regular).stop()
    r.check("a file at the path stops start-up", False)
except RuntimeError as err:
    r.check("a file at the path stops start-up", "is not a socket" in str(err), str(err)[-300:])
r.check("... and is left alone", open(regular).read() == "not a socket\n")
shutil.rmtree(spot, ignore_errors=True)
r.finish()
