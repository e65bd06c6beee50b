"""A node cut off from NATS for a while misses nothing acknowledged
(docs/cluster.md, "Failure behaviour"; cluster/journal.c): while n1's link
to nats-server is broken, core NATS drops what the other nodes publish for
n1's sessions, but the journal (NAME_journal) has a copy of every QoS 1/2
message; when the link is back n1 replays, for each session with a
subscription, what it missed since the break (engine_cluster_resync),
skipping what it had routed already (each message's run and sequence
number).

Three nodes and a real nats-server with JetStream; n1 reaches NATS through
a TCP proxy (clusterctl.Cut) that the test cuts. A v5 subscriber "csub"
(persistent session: clean start off, expiry 300 s) on n1 subscribes
cut/# at QoS 1; a publisher on n0 sends QoS 1 to cut/<i> (payload i) every
3 ms. After 1 s the proxy cuts n1's link for 2 s (n1 logs "cluster: NATS
unreachable"), then lets it through again (n1 logs "connected to NATS
again"); the stream goes on 2 s more. Checked: n0 kept acknowledging
during the cut (its link was fine); every message acknowledged to the
publisher reached csub; duplicates under 10 %; n1's /metrics counted a
journal replay. Without the resync (MIDGE_CUT_EXTRA="midge_cluster_journal_bytes
0", or the engine_cluster_resync() call removed) the messages published
during the cut, and a few right after it, are missing: 630-690 of about
1550 acknowledged, and the check fails."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
import httpctl  # noqa: E402
from clusterctl import Stream, counts, ranges  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster-cut")
brokerctl.deadline(r, 60)
check = r.check
# MIDGE_CUT_EXTRA: configuration lines for every node (e.g.
# "midge_cluster_journal_bytes 0", to see the test fail without the journal)
EXTRA = os.environ.get("MIDGE_CUT_EXTRA", "").replace("\\n", "\n")


def wait_log(node, text, timeout):
    end = time.time() + timeout
    while time.time() < end and text not in node.log_text():
        time.sleep(0.05)
    return text in node.log_text()


def journal_lines(node):
    return [ln for ln in node.log_text().splitlines() if "journal" in ln or "cluster:" in ln]


t0 = time.time()
nats = clusterctl.Nats()
proxy = clusterctl.Cut(nats.port)
nodes = []
clients = []
stream = None
try:
    n0 = clusterctl.start_node(nats, "n0", extra=EXTRA)
    n1 = clusterctl.start_node(nats, "n1", url=proxy.url(),
                               extra="midge_http_listener {port2} 127.0.0.1\n" + EXTRA)
    n2 = clusterctl.start_node(nats, "n2", extra=EXTRA)
    nodes = [n0, n1, n2]
    n1.http_port = n1.ports["port2"]
    check("n1 reaches NATS through the proxy", proxy.accepted >= 1,
          "%d connections" % proxy.accepted)

    sub = Client("csub", 5, n1.port, clean=False, expiry=300)
    clients.append(sub)
    check("csub connects on n1 (clean start off, expiry 300 s)", sub.connect())
    check("csub subscribes cut/# at QoS 1", sub.subscribe("cut/#", 1))
    time.sleep(0.5)  # n1's interest reaches the other nodes
    pub = Client("cpub", 5, n0.port)
    clients.append(pub)
    check("the publisher connects on n0", pub.connect())
    stream = Stream(pub, "cut/", per_seq=True, interval=0.003, limit=5000)
    stream.start()
    time.sleep(1.0)
    before = len(stream.acked())
    got_before = len(counts(sub))
    check("messages flow n0 -> n1 before the cut (%d acked, %d received)"
          % (before, got_before), before > 100 and got_before > 100)

    # ---- n1 cut off from NATS for 2 s
    check("the proxy cuts n1's link", proxy.cut())
    t_cut = time.time()
    acked_at_cut = len(stream.acked())
    check("n1 logs that NATS is unreachable",
          wait_log(n1, "cluster: NATS unreachable", 2.0), "\n".join(journal_lines(n1)[-10:]))
    time.sleep(max(0.0, t_cut + 2.0 - time.time()))
    acked_in_cut = len(stream.acked()) - acked_at_cut
    check("n0 kept acknowledging during the cut (%d acked in 2 s): its link was fine"
          % acked_in_cut, acked_in_cut > 200)
    check("the proxy lets n1 through again", proxy.restore())
    t_restore = time.time()
    check("n1 logs that it is connected to NATS again",
          wait_log(n1, "connected to NATS again", 5.0), "\n".join(journal_lines(n1)[-10:]))
    print("n1 back %.2f s after the restore (%d proxied connections, %d refused during the cut)"
          % (time.time() - t_restore, proxy.accepted, proxy.refused))
    time.sleep(max(0.0, t_restore + 2.0 - time.time()))
    stream.stop()
    acked = stream.acked()
    check("the stream went on after the restore (%d published, %d acked)"
          % (stream.seq, len(acked)), len(acked) > acked_at_cut + acked_in_cut + 200)

    end = time.time() + 10
    while time.time() < end and not acked <= set(counts(sub)):
        time.sleep(0.2)
    got = counts(sub)
    missing = sorted(acked - set(got))
    in_cut = [s for s in missing if t_cut <= (stream.acked_at(s) or 0) < t_restore]
    early = [s for s in missing if (stream.acked_at(s) or 0) < t_cut]
    check("every message acknowledged to the publisher reached csub (%d acked, cut %.1f s)"
          % (len(acked), t_restore - t_cut), not missing,
          "missing %d: %d acknowledged before the cut, %d during it, %d after the restore: %s"
          % (len(missing), len(early), len(in_cut), len(missing) - len(early) - len(in_cut),
             ranges(missing)))
    dups = sum(n - 1 for n in got.values() if n > 1)
    with sub.cond:
        order = [int(m.payload) for m in sub.msgs]
    first = {}
    for i, x in enumerate(order):
        first.setdefault(x, i)
    firsts = sorted(first, key=first.get)
    late = sum(1 for a, b in zip(firsts, firsts[1:]) if b < a)
    print("csub: %d received, %d distinct, %d duplicates, %d first arrivals out of publish order"
          % (len(order), len(got), dups, late))
    check("duplicates fewer than 10%% of the acknowledged messages (%d)" % dups,
          dups < len(acked) // 10, ranges(s for s, n in got.items() if n > 1))

    status, text = httpctl.metrics(n1)
    if status != 200:
        text = ""
    replays = httpctl.metric_value(text, "midge_cluster_journal_replays_total")
    replayed = httpctl.metric_value(text, "midge_cluster_journal_replayed_messages_total")
    full = httpctl.metric_value(text, "midge_drops_total", {"reason": "queue_full"})
    # a replay bigger than csub's in-flight window and queue (max_inflight_messages,
    # max_queued_messages: 1000 each) would be cut short there: queue_full drops
    print("n1: midge_cluster_journal_replays_total %s, _replayed_messages_total %s, "
          "midge_drops_total{reason=\"queue_full\"} %s" % (replays, replayed, full))
    check("n1 replayed the journal after the cut (/metrics)", (replays or 0) >= 1,
          "status %s" % status)
    print("n1's log:\n  " + "\n  ".join(journal_lines(n1)))
except Exception as e:  # noqa: BLE001
    check("no exception", False, repr(e))
finally:
    if stream is not None:
        stream.stop_flag.set()
    for cl in clients:
        cl.close(disconnect=False)
    proxy.close()
    clusterctl.stop(nodes, nats)
    print("runtime %.1f s" % (time.time() - t0))
r.finish()
