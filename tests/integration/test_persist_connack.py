"""The CONNACK waits for the store when session present depends on it, on
the real binary (raw MQTT 3.1.1 and 5 sockets). Commits are slowed down
(midge_persist_commit_delay_ms 1000) so that a CONNACK sent before its
commit would be followed by the kill -9 long before the commit.

- A CONNECT that creates a persistent session, then a kill -9 as soon as
  the CONNACK is read: after the restart the client resumes it with
  session present 1 (3.1.1 and 5).
- A clean session (3.1.1) / clean start (5) over a stored session with a
  subscription, then a kill -9 as soon as the CONNACK is read: after the
  restart that session is not there (session present 0, and nothing is
  delivered for the old subscription).
- CONNECT and SUBSCRIBE sent in one write: CONNACK first, then SUBACK
  [MQTT-3.2.0-1] (the input held behind the CONNACK is read again).
- A clean session that replaces nothing stored is answered at once."""

import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import kill9  # noqa: E402

r = brokerctl.Results("persist-connack")
brokerctl.deadline(r, 50)
check = r.check
EXTRA = "midge_persist_commit_delay_ms 1000\n"
DIRS = []


def newdir():
    d = tempfile.mkdtemp(prefix="midge-connack-")
    DIRS.append(d)
    return d


def connect_bytes(cid, version, clean, expiry):
    """CONNECT: 3.1.1 (clean session), or 5 (clean start, session expiry)."""
    if version == 4:
        return brokerctl.connect_packet(cid, clean=clean)
    props = bytes([0x11]) + expiry.to_bytes(4, "big") if expiry else b""
    body = brokerctl._s(b"MQTT") + bytes([5, 0x02 if clean else 0]) + (60).to_bytes(2, "big") + \
        brokerctl.varint(len(props)) + props + brokerctl._s(cid.encode())
    return bytes([0x10]) + brokerctl.varint(len(body)) + body


def subscribe_bytes(version, pid, topic, qos):
    if version == 4:
        return brokerctl.subscribe_packet(pid, topic, qos)
    body = pid.to_bytes(2, "big") + b"\x00" + brokerctl._s(topic.encode()) + bytes([qos])
    return bytes([0x82]) + brokerctl.varint(len(body)) + body


def connect(port, cid, version, clean, then=b"", expiry=600):
    """A socket whose CONNECT (and then) went in one write; returns
    (socket, session present, seconds until the CONNACK), or
    (None, None, None) without a CONNACK accepting it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.time()
    s.sendall(connect_bytes(cid, version, clean, expiry) + then)
    pk = brokerctl.read_packet(s)
    took = time.time() - t0
    if not pk or pk[0] != 0x20 or pk[1][1] != 0:
        s.close()
        return None, None, None
    return s, bool(pk[1][0] & 1), took


def case_created(version):
    tag = "v%d" % version
    d = newdir()
    b = persistctl.start(d, EXTRA)
    s, present, took = connect(b.port, "new-%d" % version, version, False)
    check("%s: a new persistent session is accepted, session present 0" % tag,
          s is not None and present is False)
    check("%s: its CONNACK waited for the commit (%.2f s)" % (tag, took or 0),
          took is not None and took >= 0.5)
    kill9(b)  # as soon as the CONNACK was read
    if s:
        s.close()
    b = persistctl.start(d, EXTRA)
    s, present, _ = connect(b.port, "new-%d" % version, version, False)
    check("%s: after a kill -9 right after that CONNACK the session is there "
          "(session present 1)" % tag, s is not None and present is True)
    if s:
        s.close()
    b.stop()


def case_discarded(version):
    tag = "v%d" % version
    d = newdir()
    cid = "old-%d" % version
    b = persistctl.start(d, EXTRA)
    s, present, _ = connect(b.port, cid, version, False)
    s.sendall(subscribe_bytes(version, 1, "d/#", 1))
    pk = brokerctl.read_packet(s)
    check("%s: a stored session subscribes (SUBACK)" % tag, pk is not None and pk[0] == 0x90)
    s.close()
    time.sleep(0.2)
    # v5: clean start and session expiry 0, so that no new session is stored
    s, present, took = connect(b.port, cid, version, True, expiry=0)
    check("%s: a clean session over it is accepted, session present 0" % tag,
          s is not None and present is False)
    check("%s: its CONNACK waited for the commit that ends the stored one (%.2f s)"
          % (tag, took or 0), took is not None and took >= 0.5)
    kill9(b)
    if s:
        s.close()
    b = persistctl.start(d, EXTRA)
    pub = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    pub.sendall(brokerctl.connect_packet("pub-%d" % version))
    brokerctl.read_packet(pub)
    pub.sendall(brokerctl.publish_packet("d/x", b"after", 1, 1))
    pk = brokerctl.read_packet(pub)
    check("%s: a QoS 1 message on the old subscription's topic is accepted" % tag,
          pk is not None and pk[0] == 0x40)
    pub.close()
    s, present, _ = connect(b.port, cid, version, False)
    check("%s: after a kill -9 right after that CONNACK the discarded session "
          "stays discarded (session present 0)" % tag, s is not None and present is False)
    pk = brokerctl.read_packet(s, 1.0) if s else None
    check("%s: and nothing is delivered for its old subscription" % tag, s and pk is None)
    if s:
        s.close()
    b.stop()


def case_pipelined(version):
    """[MQTT-3.2.0-1] CONNECT and SUBSCRIBE in one write: CONNACK, then SUBACK."""
    tag = "v%d" % version
    d = newdir()
    b = persistctl.start(d, EXTRA)
    s, present, _ = connect(b.port, "pipe-%d" % version, version, False,
                            subscribe_bytes(version, 7, "p/#", 1))
    check("%s: CONNECT and SUBSCRIBE in one write: the CONNACK comes first" % tag, s is not None)
    pk = brokerctl.read_packet(s, 5) if s else None
    check("%s: then the SUBACK (the held input was read again)" % tag,
          pk is not None and pk[0] == 0x90 and pk[1][:2] == (7).to_bytes(2, "big"))
    if s:
        s.close()
    # a clean session that replaces nothing stored: no commit to wait for
    s, present, took = connect(b.port, "clean-%d" % version, version, True, expiry=0)
    check("%s: a clean session that replaces nothing stored is answered at once (%.2f s)"
          % (tag, took or 0), s is not None and took < 0.5)
    if s:
        s.close()
    b.stop()


try:
    for v in (4, 5):
        case_created(v)
        case_discarded(v)
        case_pipelined(v)
finally:
    for d in DIRS:
        shutil.rmtree(d, ignore_errors=True)
r.finish()
