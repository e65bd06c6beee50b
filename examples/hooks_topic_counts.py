#!/usr/bin/python3
"""React to midge's events: count published messages and bytes per topic
and print a table every second.

It subscribes to "message.published/" only, so the broker renders nothing
else for it (and nothing at all while nobody listens). See docs/events.md.

    ./hooks_topic_counts.py
    ./hooks_topic_counts.py -p message.published/sensors/ --top 5
    ./hooks_topic_counts.py --seconds 3          # bounded (for tests)

Needs pyzmq (Debian: python3-zmq).
"""
import argparse
import collections
import time

import zmq

from midge_hooks import add_connection_args, connect, decode, run


def table(counts, nbytes, top):
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    width = max([len("topic")] + [len(t) for t, _ in rows])
    out = [f"{'topic':<{width}}  {'messages':>9}  {'bytes':>10}"]
    for topic, n in rows:
        out.append(f"{topic:<{width}}  {n:>9}  {nbytes[topic]:>10}")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_connection_args(ap)
    ap.add_argument("-p", "--prefix", default="message.published/",
                    help="subscription prefix (default: message.published/)")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0,
                    help="print the final table and exit after this long (0 = never)")
    args = ap.parse_args(argv)

    sock = connect(args.endpoint, [args.prefix], args.server_key)

    counts = collections.Counter()
    nbytes = collections.Counter()
    dropped = 0
    start = time.monotonic()
    next_print = start + args.interval
    while True:
        now = time.monotonic()
        if args.seconds and now - start >= args.seconds:
            break
        if now >= next_print:
            print(table(counts, nbytes, args.top), flush=True)
            print(f"({sum(counts.values())} messages, broker dropped {dropped} events)\n",
                  flush=True)
            next_print = now + args.interval
        wait = max(1, int((next_print - now) * 1000))
        if not sock.poll(wait):
            continue
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            for ev, payload in decode(frames):
                topic = ev["topic"]
                counts[topic] += 1
                nbytes[topic] += len(payload)
                dropped = ev.get("dropped", dropped)
    print(table(counts, nbytes, args.top), flush=True)
    print(f"({sum(counts.values())} messages, broker dropped {dropped} events)", flush=True)
    return 0


if __name__ == "__main__":
    run(main)
