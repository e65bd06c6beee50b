#!/usr/bin/python3
"""Print midge's lifecycle events as they happen.

midge publishes every event on a ZeroMQ XPUB socket as three frames:
[event name, with "/<topic>" for message events] [JSON object] [payload,
message events only], or, with midge_hooks_format compact, message events
in a binary frame (alone or in batches); midge_hooks.decode() reads both.
See docs/events.md.

    ./hooks_print.py                                # everything, default endpoint
    ./hooks_print.py -p client. -p message.published/sensors/
    ./hooks_print.py --server-key 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
    ./hooks_print.py --count 10 --timeout 5         # bounded (for tests)

Needs pyzmq (Debian: python3-zmq).
"""
import argparse
import json
import time

from midge_hooks import add_connection_args, connect, decode, run


def describe(ev):
    """One line for a human: the fields that matter for each kind of event."""
    name = ev.get("event", "?")
    who = ev.get("client_id")
    parts = [f"#{ev.get('seq')}", name]
    if who is not None:
        parts.append(f"client={who!r}")
        if ev.get("peer_addr"):
            parts.append(f"peer={ev['peer_addr']}:{ev.get('peer_port')}")
    for key in ("topic", "filter", "qos", "retain", "rc", "rc_name", "to",
                "drop_reason", "why", "expiry", "queued"):
        if ev.get(key) not in (None, False):
            parts.append(f"{key}={ev[key]!r}")
    if ev.get("user_properties"):
        parts.append(f"props={ev['user_properties']!r}")
    return " ".join(str(p) for p in parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(ap)
    ap.add_argument("-p", "--prefix", action="append",
                    help="subscription prefix (repeatable; default: everything)")
    ap.add_argument("--json", action="store_true", help="print the raw JSON objects")
    ap.add_argument("--count", type=int, default=0, help="exit after this many events")
    ap.add_argument("--timeout", type=float, default=0,
                    help="exit after this many seconds (0 = never)")
    args = ap.parse_args(argv)

    sock = connect(args.endpoint, args.prefix, args.server_key)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    seen = 0
    last_dropped = 0
    while not args.count or seen < args.count:
        wait = 1000
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = max(1, int(left * 1000))
        if not sock.poll(wait):
            continue
        for ev, payload in decode(sock.recv_multipart()):
            # The broker counts the events it could not queue for us; a
            # rise means we missed some (the sequence numbers show where).
            if ev.get("dropped", 0) > last_dropped:
                print(f"! {ev['dropped'] - last_dropped} event(s) dropped by the broker",
                      flush=True)
                last_dropped = ev["dropped"]
            if args.json:
                print(json.dumps(ev, separators=(",", ":")), flush=True)
            else:
                line = describe(ev)
                if payload is not None:
                    line += f" payload={payload[:60]!r}"
                print(line, flush=True)
            seen += 1
    return 0


if __name__ == "__main__":
    run(main)
