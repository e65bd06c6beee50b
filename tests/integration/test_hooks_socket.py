#!/usr/bin/python3
"""test_hooks_socket.py - the event socket against the real daemon: the
default ipc:// endpoint in a directory only the broker's user can open
(failing closed when it is not), a second broker not taking a running
one's socket, the warning for tcp:// without CurveZMQ, the bound on
prefixes per socket, events complete and in order under load in both
formats (read with examples/midge_hooks.decode), and a shutdown with
events in flight.

Prints "N passed, M failed" last; exits 1 if anything failed.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import brokerctl  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet  # noqa: E402

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(TOP_SRCDIR, "examples"))
import midge_hooks  # noqa: E402

r = brokerctl.Results("hooks_socket")
brokerctl.deadline(r, 120)
CTX = zmq.Context.instance()

# brokerctl adds "midge_hooks_endpoint none" unless the text names the key:
# these brokers use the default on purpose.
DEFAULT = "# midge_hooks_endpoint not set: the default ipc:// socket\n"


def env_with(xdg):
    return dict(os.environ, XDG_RUNTIME_DIR=xdg)


def sub(endpoint, *prefixes, rcvhwm=0):
    s = CTX.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, rcvhwm)
    for p in prefixes:
        s.setsockopt(zmq.SUBSCRIBE, p.encode())
    s.connect(endpoint)
    return s


def client(port, cid):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(connect_packet(cid))
    ack = read_packet(c)
    assert ack is not None and ack[0] == 0x20, ack
    return c


def wait_event(s, name, port, tag, timeout=5.0):
    """Connects clients named tag until s receives an event called name for
    one (a new subscription takes a moment to reach the broker)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        client(port, tag).close()
        while s.poll(200):
            for ev, _ in midge_hooks.decode(s.recv_multipart()):
                if ev["event"] == name and ev.get("client_id") == tag:
                    return ev
    return None


def wait_log(b, text, timeout=5.0):
    """Whether the broker's log says text within timeout (the publisher
    starts after the listeners, which brokerctl waits for)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in b.log_text():
            return True
        time.sleep(0.05)
    return False


def terminate(b):
    """SIGTERM, then (exit status, log): the log is read before brokerctl
    removes it."""
    b.signal(signal.SIGTERM)
    try:
        b.proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    log = b.log_text()
    return b.stop(), log


def stopped(b, what):
    """Stops b and checks it stopped cleanly: status 0, and nothing from a
    sanitizer (an ASan or TSan build reports leaks and races in the log)."""
    rc, log = terminate(b)
    r.check("%s: stopped cleanly" % what, rc == 0 and "Sanitizer" not in log,
            "rc %s %s" % (rc, log[-600:]))
    return log


def start_fails(conf, env):
    """Starts midge expecting it to stop at start-up: (exit status, log)."""
    b = brokerctl.start(conf, wait_for=None, env=env)
    try:
        b.proc.wait(10)
    except Exception:
        pass
    log = b.log_text()
    rc = b.stop()
    return rc, log


def test_default_endpoint():
    xdg = tempfile.mkdtemp(prefix="midge-xdg-")
    try:
        b = brokerctl.start(DEFAULT, env=env_with(xdg))
        ep = "ipc://%s/midge/events" % xdg
        d = os.path.join(xdg, "midge")
        r.check("default endpoint logged", wait_log(b, "events published on " + ep),
                b.log_text()[-400:])
        st = os.lstat(d)
        r.check("directory 0700, ours", (st.st_mode & 0o777) == 0o700 and st.st_uid == os.geteuid(),
                oct(st.st_mode))
        r.check("no plain-tcp warning for ipc", "without CurveZMQ" not in b.log_text())
        s = sub(ep, "client.")
        ev = wait_event(s, "client.connected", b.port, "default-ep")
        r.check("events on the default endpoint", ev is not None)

        # A second broker with the same default does not take the socket.
        b2 = brokerctl.start(DEFAULT, env=env_with(xdg))
        r.check("second broker runs", b2.alive())
        r.check("second broker says the default is in use",
                wait_log(b2, "not started on the default") and "in use" in b2.log_text(),
                b2.log_text()[-400:])
        ev = wait_event(s, "client.connected", b.port, "still-first")
        r.check("first broker still publishes", ev is not None)
        s.close()
        stopped(b2, "second broker")
        stopped(b, "default-endpoint broker")

        # Wider permissions stop start-up, naming the directory.
        os.chmod(d, 0o755)
        rc, log = start_fails(DEFAULT, env_with(xdg))
        r.check("0755 directory stops start-up", rc not in (0, None) and d in log and "mode 755" in log,
                "rc %s log %s" % (rc, log[-300:]))
        os.chmod(d, 0o700)
        if os.geteuid() == 0:
            os.chown(d, 65534, 65534)
            rc, log = start_fails(DEFAULT, env_with(xdg))
            r.check("foreign owner stops start-up", rc not in (0, None) and "belongs to uid 65534" in log,
                    "rc %s log %s" % (rc, log[-300:]))
            os.chown(d, 0, 0)
        # an explicit endpoint does not need the directory
        os.chmod(d, 0o777)
        b = brokerctl.start("midge_hooks_endpoint none\n", env=env_with(xdg))
        r.check("midge_hooks_endpoint none ignores the directory", b.alive())
        stopped(b, "broker with none")
    finally:
        shutil.rmtree(xdg, ignore_errors=True)


def test_tcp_warning():
    hp = brokerctl.free_port()
    b = brokerctl.start("midge_hooks_endpoint tcp://127.0.0.1:%d\n" % hp)
    r.check("tcp without CurveZMQ warned", wait_log(b, "without CurveZMQ"), b.log_text()[-300:])
    stopped(b, "plain tcp broker")
    pub, sec = zmq.curve_keypair()
    b = brokerctl.start("midge_hooks_endpoint tcp://127.0.0.1:%d\n"
                        "midge_hooks_curve_secret_key %s\n" % (hp, sec.decode()))
    r.check("tcp with CurveZMQ not warned", wait_log(b, "events published on") and
            "without CurveZMQ" not in b.log_text(), b.log_text()[-300:])
    stopped(b, "CurveZMQ broker")


def test_prefix_bound():
    hp = brokerctl.free_port()
    ep = "tcp://127.0.0.1:%d" % hp
    b = brokerctl.start("midge_hooks_endpoint %s\nmidge_hooks_max_prefixes 2\n" % ep)
    s = sub(ep, "client.", "session.")
    wait_event(s, "client.connected", b.port, "bound-1")
    s.setsockopt(zmq.SUBSCRIBE, b"message.")
    end = time.monotonic() + 5
    while time.monotonic() < end and "'message.' ignored" not in b.log_text():
        time.sleep(0.1)
    r.check("over-the-bound subscription logged", "'message.' ignored" in b.log_text(),
            b.log_text()[-400:])
    c = client(b.port, "bound-2")
    c.sendall(publish_packet("bound/t", b"x"))
    c.close()
    names = set()
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        if s.poll(100):
            for ev, _ in midge_hooks.decode(s.recv_multipart()):
                names.add(ev["event"])
    r.check("ignored prefix renders nothing", "message.published" not in names and
            "client.connected" in names, names)
    s.close()
    stopped(b, "bounded broker")


def thread_nice(pid, name):
    """The nice value of the broker's thread called name (Linux), or None."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                return int(f.read().rsplit(")", 1)[1].split()[16])
        except OSError:
            pass
    return None


def test_nice():
    """The publisher's thread yields to the broker's (midge_hooks_nice)."""
    if not os.path.isdir("/proc/self/task"):
        return
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the broker inherits it (CI may run under nice)
    for conf, n in (("", 10), ("midge_hooks_nice 0\n", 0), ("midge_hooks_nice 19\n", 19)):
        want = min(19, base + n)
        hp = brokerctl.free_port()
        b = brokerctl.start("midge_hooks_endpoint tcp://127.0.0.1:%d\n%s" % (hp, conf))
        wait_log(b, "events published on")
        got = None
        for _ in range(50):
            got = thread_nice(b.pid, "midge-hooks")
            if got == want:
                break
            time.sleep(0.05)
        r.check("publisher thread at nice %d (broker's %d + %d)" % (want, base, n), got == want, got)
        stopped(b, "nice +%d broker" % n)


def run_load(fmt, prefix, n=3000):
    """n publishes, pipelined: every message.published event arrives, in
    order, its payload intact, nothing dropped."""
    hp = brokerctl.free_port()
    ep = "tcp://127.0.0.1:%d" % hp
    b = brokerctl.start("midge_hooks_endpoint %s\nmidge_hooks_format %s\n" % (ep, fmt))
    s = sub(ep, prefix, "client.")
    wait_event(s, "client.connected", b.port, "load-sync-%s" % fmt)
    c = client(b.port, "load-pub")
    payloads = [("%d:" % i).encode() + bytes([i % 251]) * (i % 300) for i in range(n)]
    c.sendall(b"".join(publish_packet("load/%d" % (i % 17), payloads[i]) for i in range(n)))
    got, seqs, dropped = [], [], 0
    end = time.monotonic() + 20
    while len(got) < n and time.monotonic() < end:
        if not s.poll(200):
            continue
        for ev, payload in midge_hooks.decode(s.recv_multipart()):
            # A "message." prefix also takes the broker's own $SYS
            # publishes, which a slow (TSan) run sees mid-load.
            if ev["event"] != "message.published" or not ev["topic"].startswith("load/"):
                continue
            got.append((ev["topic"], payload))
            seqs.append(ev["seq"])
            dropped = max(dropped, ev["dropped"])
    c.close()
    want = [("load/%d" % (i % 17), payloads[i]) for i in range(n)]
    r.check("%s: %d events complete and in order" % (fmt, n), got == want,
            "got %d, first difference at %s" % (
                len(got), next((i for i, (a, w) in enumerate(zip(got, want)) if a != w), None)))
    r.check("%s: seq increasing, nothing dropped" % fmt,
            all(a < b for a, b in zip(seqs, seqs[1:])) and dropped == 0, dropped)
    s.close()
    stopped(b, "%s load broker" % fmt)


def test_shutdown_in_flight():
    """SIGTERM while publishes flow to a consumer that never reads: the
    broker stops cleanly (an ASan or TSan build would fail the exit
    status on a leak or a race)."""
    hp = brokerctl.free_port()
    ep = "tcp://127.0.0.1:%d" % hp
    b = brokerctl.start("midge_hooks_endpoint %s\nmidge_hooks_hwm 100\n" % ep)
    stuck = sub(ep, "", rcvhwm=10)
    stuck.setsockopt(zmq.RCVBUF, 4096)
    wait_event(stuck, "client.connected", b.port, "flight-sync")
    c = client(b.port, "flight-pub")
    chunk = b"".join(publish_packet("flight/%d" % i, b"p" * 500) for i in range(2000))
    for _ in range(5):
        c.sendall(chunk)
    log = stopped(b, "events in flight")
    r.check("stopped with events in flight", "midge stopped" in log, log[-600:])
    c.close()
    stuck.close()


def main():
    if brokerctl.broker_kind() != "midge":
        r.check("midge only (event socket)", True)
        r.finish()
    test_default_endpoint()
    test_tcp_warning()
    test_prefix_bound()
    test_nice()
    run_load("json", "message.published/load/")
    run_load("compact", "message.")
    run_load("compact", "message.published/load/")
    test_shutdown_in_flight()
    r.finish()


if __name__ == "__main__":
    main()
