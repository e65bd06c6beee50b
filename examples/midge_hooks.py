"""midge_hooks - what every midge event example needs: the default event
endpoint, the shared command-line options, a SUB socket on the broker's
XPUB endpoint (plain or CurveZMQ), and decode(), which turns what arrives
into (event, payload) pairs whatever midge_hooks_format the broker uses.
The examples import it from their own folder, so they still run by path
(./hooks_print.py).

Needs pyzmq (Debian: python3-zmq).
"""
import base64
import json
import os
import struct
import sys

import zmq


def default_endpoint():
    """Where midge publishes when midge_hooks_endpoint is not set (for a
    broker run by the same user): ipc://$XDG_RUNTIME_DIR/midge/events, else
    /run/midge/events for root, else /tmp/midge-UID/events."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        d = os.path.join(xdg, "midge")
    elif os.geteuid() == 0:
        d = "/run/midge"
    else:
        d = "/tmp/midge-%d" % os.geteuid()
    return "ipc://" + os.path.join(d, "events")


DEFAULT_ENDPOINT = default_endpoint()


def add_connection_args(ap):
    """The -e/--endpoint and --server-key options every example takes."""
    ap.add_argument("-e", "--endpoint", default=DEFAULT_ENDPOINT,
                    help="the broker's event endpoint (default: %(default)s)")
    ap.add_argument("--server-key", help="the broker's CurveZMQ public key (Z85)")


def connect(endpoint, prefixes, server_key=None):
    """A SUB socket subscribed to prefixes ("" = everything)."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        # CurveZMQ: the broker's public key, and a throwaway key pair of ours.
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    for p in prefixes or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, p.encode())
    sock.connect(endpoint)
    return sock


def run(main):
    """Exits with main()'s status; Ctrl-C is a normal way to stop."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)


# ---------------------------------------------------------------- decoding

# enum midge_event_type: the numbers of the compact format's type byte.
EVENT_NAMES = {
    1: "client.connected", 2: "client.refused", 3: "client.disconnected",
    4: "client.ping", 5: "client.subscribed", 6: "client.unsubscribed",
    7: "message.published", 8: "message.delivered", 9: "message.acked",
    10: "message.dropped", 11: "message.will", 12: "retained.set",
    13: "retained.cleared", 14: "session.created", 15: "session.resumed",
    16: "session.taken_over", 17: "session.expired", 18: "session.discarded",
    19: "client.protocol_error",
}
DROP_REASONS = {
    1: "no_subscribers", 2: "queue_full", 3: "slow_consumer", 4: "expired",
    5: "too_large", 6: "not_authorized", 7: "hook_backlog",
    8: "payload_format_invalid", 9: "retained_full",
}

# MQTT 5 property identifiers and how their values are coded [MQTT-2.2.2].
_PROP_KINDS = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin",
    0x0B: "varint", 0x23: "u16", 0x26: "pair",
}


def _varint(b, i):
    value, mult = 0, 1
    for _ in range(4):
        d = b[i]
        i += 1
        value += (d & 0x7F) * mult
        mult *= 128
        if not d & 0x80:
            return value, i
    raise ValueError("variable byte integer over 4 bytes")


def _mqtt_str(b, i):
    n = struct.unpack_from("!H", b, i)[0]
    return b[i + 2:i + 2 + n], i + 2 + n


def parse_properties(block):
    """The fields midge's JSON shows for a raw MQTT 5 PUBLISH property
    block (the compact format carries the block as published)."""
    out = {"payload_format": None, "message_expiry": None, "content_type": None,
           "response_topic": None, "correlation_data": None, "user_properties": []}
    i = 0
    while block is not None and i < len(block):
        pid, i = _varint(block, i)
        kind = _PROP_KINDS.get(pid)
        if kind == "byte":
            v, i = block[i], i + 1
        elif kind == "u16":
            v, i = struct.unpack_from("!H", block, i)[0], i + 2
        elif kind == "u32":
            v, i = struct.unpack_from("!I", block, i)[0], i + 4
        elif kind == "varint":
            v, i = _varint(block, i)
        elif kind in ("str", "bin"):
            v, i = _mqtt_str(block, i)
        elif kind == "pair":
            k, i = _mqtt_str(block, i)
            v, i = _mqtt_str(block, i)
            out["user_properties"].append([k.decode(errors="replace"),
                                           v.decode(errors="replace")])
            continue
        else:
            break  # not a PUBLISH property: midge would not have accepted it
        if pid == 0x01:
            out["payload_format"] = v
        elif pid == 0x02:
            out["message_expiry"] = v
        elif pid == 0x03:
            out["content_type"] = v.decode(errors="replace")
        elif pid == 0x08:
            out["response_topic"] = v.decode(errors="replace")
        elif pid == 0x09:
            out["correlation_data"] = base64.b64encode(v).decode()
    return out


_HEAD = struct.Struct("<BBBBQQQHHBBBBHH")  # the 40 fixed bytes of a compact body


def _compact_body(body):
    """(event, payload) of one compact body (docs/events.md)."""
    (version, etype, flags, qos, seq, dropped, ts, packet_id, dpid, dqos, drop_code,
     protocol, _, peer_port, _) = _HEAD.unpack_from(body, 0)
    if version != 1:
        raise ValueError("compact format version %d" % version)
    strings, i = [], _HEAD.size
    for _ in range(9):
        n = struct.unpack_from("<I", body, i)[0]
        i += 4
        if n == 0xFFFFFFFF:
            strings.append(None)
        else:
            strings.append(body[i:i + n])
            i += n
    topic, cid, user, peer, origin, to, why, props, payload = strings
    txt = lambda b: None if b is None else b.decode(errors="replace")  # noqa: E731
    client = flags & 4
    name = EVENT_NAMES.get(etype, "unknown")
    ev = {"schema": 1, "seq": seq, "dropped": dropped, "event": name, "ts": ts,
          "node": None,
          "client_id": txt(cid) if client else None,
          "username": txt(user) if client else None,
          "peer_addr": txt(peer) if client else None,
          "peer_port": peer_port if client and peer is not None else None,
          "protocol": protocol if client and protocol else None,
          "tls": bool(flags & 8) if client else None,
          "topic": txt(topic), "qos": qos, "retain": bool(flags & 1), "dup": bool(flags & 2),
          "packet_id": packet_id, "origin": txt(origin) or None,
          "payload_len": len(payload)}
    ev.update(parse_properties(props))
    if name in ("message.delivered", "message.acked", "message.dropped"):
        ev.update({"to": txt(to), "delivery_qos": dqos, "delivery_packet_id": dpid})
    if name == "message.dropped":
        ev.update({"drop_reason": DROP_REASONS.get(drop_code), "drop_code": drop_code})
    ev["why"] = txt(why)
    return ev, payload


def decode(frames):
    """[(event dict, payload bytes or None)] of one ZeroMQ message, in the
    order midge sent them:

    - JSON (the default, and every non-message event in compact format):
      [name, JSON object] or [name, JSON object, payload];
    - compact, one event: one frame, "<name>/<topic>", a NUL, a body;
    - compact, a batch of one event type: one frame, "<name>/", a NUL, a
      32-bit count and count times a 32-bit length and a body.

    A compact event's dict has the JSON object's keys (node is None: the
    compact format leaves it out)."""
    if len(frames) >= 2:
        ev = json.loads(frames[1])
        return [(ev, frames[2] if len(frames) > 2 else None)]
    frame = frames[0]
    nul = frame.index(b"\0")
    key, at = frame[:nul], nul + 1
    if not key.endswith(b"/"):
        return [_compact_body(memoryview(frame)[at:].tobytes())]
    count = struct.unpack_from("<I", frame, at)[0]
    at += 4
    out = []
    for _ in range(count):
        n = struct.unpack_from("<I", frame, at)[0]
        out.append(_compact_body(frame[at + 4:at + 4 + n]))
        at += 4 + n
    return out
