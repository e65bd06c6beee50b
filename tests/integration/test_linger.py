#!/usr/bin/python3
"""test_linger.py - lingering close: a client that is still writing when
midge ends its connection reads what midge sent (DISCONNECT, a refusing
CONNACK) and then EOF, never a reset, over TCP and over TLS (where
close_notify comes first); and lingering is bounded in count and in time.

Each "still writing" client works as Paho's does: it writes its whole
stream first and reads afterwards. Without lingering, midge closes with
unread input, the kernel answers the client's next segment with a reset,
its writes fail with EPIPE/ECONNRESET and the DISCONNECT is lost.

Prints "N passed, M failed" last; exits 1 if anything failed.
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import _s, connect_packet, publish_packet, split_packets, subscribe_packet, varint  # noqa: E402

r = brokerctl.Results("linger")
brokerctl.deadline(r, 120)

RECV_MAX = 10
WRITE_SECONDS = 1.0   # under midge's LINGER_MS (1.5 s): every write must be taken
LINGER_MAX = 256      # transport/conn.h
LINGER_S = 1.5
CLOSE_GRACE_S = 5     # CLOSE_GRACE_MS


def connect_v5(client_id, user=None):
    flags = 0x02 | (0x80 if user else 0)
    body = _s(b"MQTT") + bytes([5, flags]) + (60).to_bytes(2, "big") + b"\x00" + \
        _s(client_id.encode()) + (_s(user.encode()) if user else b"")
    return bytes([0x10]) + varint(len(body)) + body


def publish_v5(topic, payload, qos, packet_id):
    body = _s(topic.encode()) + (packet_id.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


def write_then_read(sock, first, filler):
    """Paho's order: first, then filler for WRITE_SECONDS, then read until
    EOF. Returns (write error or None, bytes read, how the read ended)."""
    sock.settimeout(5)
    err = None
    try:
        sock.sendall(first)
        end = time.monotonic() + WRITE_SECONDS
        while time.monotonic() < end:
            sock.sendall(filler)
    except OSError as e:
        err = e
    data, ending = b"", "timeout"
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                ending = "EOF"
                break
            data += chunk
    except OSError as e:
        ending = repr(e)
    return err, data, ending


def filler_chunk():
    one = publish_v5("linger/fill", b"f" * 200, 0, 0)
    return one * (65536 // len(one))


def disconnect_reason(pkts):
    """The reason code of the DISCONNECT in pkts (0 for none given), or None."""
    for first, body in pkts:
        if first == 0xE0:
            return body[0] if body else 0
    return None


def case_receive_maximum(b):
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(connect_v5("linger-rmax"))
    ack = brokerctl.read_packet(s)
    r.check("receive maximum: CONNACK", ack is not None and ack[0] == 0x20 and ack[1][1] == 0, ack)
    # QoS 2, never released: the one over the window is refused.
    burst = b"".join(publish_v5("linger/q2", b"x" * 100, 2, i + 1) for i in range(2000))
    err, data, ending = write_then_read(s, burst, filler_chunk())
    s.close()
    pkts = split_packets(data)
    r.check("receive maximum: every write taken while midge lingers", err is None, repr(err))
    r.check("receive maximum: DISCONNECT 0x93 read", disconnect_reason(pkts) == 0x93,
            "%s, read %d bytes, %s" % ([hex(p[0]) for p in pkts[-3:]], len(data), ending))
    r.check("receive maximum: then EOF, not a reset", ending == "EOF", ending)


def check_protocol_error_read(s, what, eof_check):
    """Sends a QoS 3 PUBLISH on the connected s and writes on as Paho does;
    checks that every write is taken and that DISCONNECT 0x81 and then EOF
    are read. Closes s."""
    bad = bytes([0x36]) + publish_v5("linger/q3", b"x", 1, 1)[1:]  # QoS 3 [MQTT-3.3.1-4]
    err, data, ending = write_then_read(s, bad, filler_chunk())
    s.close()
    rc = disconnect_reason(split_packets(data))
    r.check(what + ": every write taken while midge lingers", err is None, repr(err))
    r.check(what + ": DISCONNECT 0x81 read", rc == 0x81, "reason %r, %s" % (rc, ending))
    r.check("%s: %s" % (what, eof_check), ending == "EOF", ending)


def case_protocol_error(b):
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(connect_v5("linger-proto"))
    ack = brokerctl.read_packet(s)
    r.check("protocol error: CONNACK", ack is not None and ack[0] == 0x20 and ack[1][1] == 0, ack)
    check_protocol_error_read(s, "protocol error", "then EOF, not a reset")


def case_refused_connack(b):
    s = socket.create_connection(("127.0.0.1", b.port))
    err, data, ending = write_then_read(s, connect_v5("linger-anon"), filler_chunk())
    s.close()
    pkts = split_packets(data)
    rc = pkts[0][1][1] if pkts and pkts[0][0] == 0x20 and len(pkts[0][1]) > 1 else None
    r.check("refused CONNECT: every write taken while midge lingers", err is None, repr(err))
    r.check("refused CONNECT: CONNACK 0x87 read", rc == 0x87, "%r, %s" % (pkts[:2], ending))
    r.check("refused CONNECT: then EOF, not a reset", ending == "EOF", ending)


def broker_fds(b):
    return len(os.listdir("/proc/%d/fd" % b.pid))


def case_bounded(b):
    """LINGER_MAX + 100 clients break the protocol and then neither read
    nor close: midge lingers for them, at most LINGER_MAX at a time, and
    no longer than its bound."""
    base = broker_fds(b)
    n = LINGER_MAX + 100
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", b.port))
        s.sendall(connect_packet("flood-%d" % i) + b"\x36\x00")  # then a QoS 3 PUBLISH
        socks.append(s)
    # Wait until midge has seen every connection end (the last CONNACK
    # is in its socket); then the count is what lingers.
    socks[-1].settimeout(5)
    try:
        socks[-1].recv(4)
    except OSError:
        pass
    time.sleep(0.2)
    during = broker_fds(b) - base
    r.check("bounded: connections linger (%d of %d)" % (during, n), during >= LINGER_MAX - 20,
            "only %d extra descriptors" % during)
    r.check("bounded: at most %d linger (%d)" % (LINGER_MAX, during), during <= LINGER_MAX + 10,
            "%d extra descriptors" % during)
    t0 = time.monotonic()
    while broker_fds(b) > base and time.monotonic() - t0 < 5:
        time.sleep(0.1)
    left = broker_fds(b) - base
    took = time.monotonic() - t0
    r.check("bounded: all closed within %.1f s + slack (%.2f s)" % (LINGER_S, took),
            left <= 0 and took < LINGER_S + 1.5, "%d left after %.2f s" % (left, took))
    # Each client reads its CONNACK then EOF: midge shut, not reset.
    s = socks[-1]
    s.settimeout(2)
    try:
        rest = s.recv(100)
    except OSError as e:
        rest = repr(e)
    r.check("bounded: a client reads EOF", rest == b"", repr(rest))
    for s in socks:
        s.close()


def case_fd_pressure():
    """Lingering connections give their descriptors back when midge runs
    out: a broker with 64 descriptors and more connections than that, each
    ending in a protocol error and staying open; all are answered at once,
    not as the lingering of the first ones runs out."""
    limit = 64
    b = brokerctl.start_fd_limited(limit, "listener {port} 127.0.0.1\nmax_connections -1\n")
    socks = []
    t0 = time.monotonic()
    for i in range(limit + 20):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        s.sendall(connect_packet("fd-%d" % i) + b"\x36\x00")
        socks.append(s)
    ended = 0
    for s in socks:
        s.settimeout(6)
        try:
            while s.recv(100):
                pass
            ended += 1
        except OSError:
            pass
    took = time.monotonic() - t0
    # Without giving descriptors back, the clients past the limit would
    # wait for the first ones' lingering to run out (LINGER_S).
    r.check("fd pressure: all %d flooding clients answered in %.2f s" % (len(socks), took),
            ended == len(socks) and took < LINGER_S - 0.3, "%d answered" % ended)
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    c.sendall(connect_packet("fd-fresh"))
    ack = brokerctl.read_packet(c, timeout=5)
    took = time.monotonic() - t0
    r.check("fd pressure: a new client served in %.2f s" % took,
            ack is not None and ack[0] == 0x20 and took < 0.8, repr(ack))
    c.close()
    for s in socks:
        s.close()
    b.stop()


def case_closing_bounded(b):
    """A client that never reads cannot hold a closing connection: what
    midge cannot write within CLOSE_GRACE_S of the close is dropped."""
    pub = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    pub.sendall(connect_packet("grace-pub"))
    brokerctl.read_packet(pub)
    sub = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.connect(("127.0.0.1", b.port))
    sub.sendall(connect_packet("grace-sub") + subscribe_packet(1, "grace/#", 0))
    brokerctl.read_packet(sub)
    brokerctl.read_packet(sub)
    base = broker_fds(b)
    # The subscriber stops reading; the kernel's buffers (megabytes on
    # loopback) and its output queue fill.
    big = publish_packet("grace/x", b"g" * 65536)
    for _ in range(200):
        pub.sendall(big)
    time.sleep(0.3)
    sub.sendall(b"\x36\x00")  # a protocol error: midge closes, but cannot flush
    t0 = time.monotonic()
    while broker_fds(b) >= base and time.monotonic() - t0 < CLOSE_GRACE_S + 4:
        time.sleep(0.1)
    took = time.monotonic() - t0
    r.check("closing bounded: dropped after the %d s grace (%.1f s)" % (CLOSE_GRACE_S, took),
            CLOSE_GRACE_S - 1 <= took < CLOSE_GRACE_S + 2.5, "%.1f s" % took)
    sub.close()
    pub.close()


def make_server_cert(d):
    """A self-signed server certificate for localhost / 127.0.0.1."""
    key, cert, tpl = (os.path.join(d, n) for n in ("key.pem", "cert.pem", "tpl.cfg"))
    with open(tpl, "w") as f:
        f.write('cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                'tls_www_server\nsigning_key\nencryption_key\nca\ncert_signing_key\n'
                'expiration_days = 2\n')
    subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", key],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tpl,
                    "--outfile", cert], check=True, capture_output=True, timeout=60)
    os.chmod(d, 0o755)
    for path in (key, cert):
        os.chmod(path, 0o644)
    return key, cert


def case_tls():
    """Over TLS: the DISCONNECT, then close_notify (a clean TLS end:
    without it, suppress_ragged_eofs=False makes the read raise)."""
    d = tempfile.mkdtemp(prefix="midge-linger-")
    try:
        key, cert = make_server_cert(d)
        b = brokerctl.start("listener {port} 127.0.0.1\ncertfile %s\nkeyfile %s\n" % (cert, key))
        ctx = ssl.create_default_context(cafile=cert)
        raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        s.sendall(connect_v5("linger-tls"))
        ack = brokerctl.read_packet(s)
        r.check("TLS: CONNACK", ack is not None and ack[0] == 0x20 and ack[1][1] == 0, ack)
        check_protocol_error_read(s, "TLS", "then close_notify and EOF")
        b.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    b = brokerctl.start("listener {port} 127.0.0.1\nmidge_receive_maximum %d\n" % RECV_MAX)
    case_receive_maximum(b)
    case_protocol_error(b)
    case_bounded(b)
    case_closing_bounded(b)
    r.check("broker still serving", brokerctl.wait_port(b.port, timeout=2), b.log_text()[-500:])
    b.stop()
    b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n")
    case_refused_connack(b)
    b.stop()
    case_tls()
    case_fd_pressure()
    r.finish()


if __name__ == "__main__":
    main()
