"""The cluster summary on every node (issue 18: "a cluster summary (nodes,
their clients) is available on every node"; "/metrics carry the node
name"), with three midge nodes over a real nats-server:
- GET /api/v1/cluster on each node lists the three live nodes, by name,
  with the clients each has connected (1, 2, 3 paho clients), this node
  marked self, the link's state, the total;
- /metrics: midge_node_info with the node and cluster as labels, the
  cluster's link counters, midge_cluster_nodes and each node's clients
  (promtool check metrics passes);
- $SYS/broker/midge/cluster/nodes and .../clients/connected;
- a node killed with SIGKILL leaves every summary once its lease lapses;
- outside a cluster: /api/v1/cluster is 404, no cluster metrics."""

import os
import socket
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
import httpctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster summary")
brokerctl.deadline(r, 150)
check = r.check


def start(nats, name):
    b = httpctl.start("midge_cluster %s\nmidge_node_name %s\nmidge_cluster_name sum\n"
                      "sys_interval 1\n" % (nats.url(), name))
    b.name = name
    return b


def summary(b):
    status, o = httpctl.get(b, "/api/v1/cluster")
    return o if status == 200 and isinstance(o, dict) else None


def clients_by_node(o):
    return {n.get("name"): n.get("clients") for n in (o or {}).get("nodes", [])}


def wait_for(fn, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.25)
    return fn()


nats = clusterctl.Nats()
nodes, clients = [], []
try:
    nodes = [start(nats, "n%d" % i) for i in range(3)]
    for i, n in enumerate(nodes):
        for k in range(i + 1):
            c = Client("c%d-%d" % (i, k), 4 if k % 2 else 5, n.port)
            c.connect()
            clients.append(c)
    want = {"n0": 1, "n1": 2, "n2": 3}
    # the others' counts travel with the leases' heartbeats (a third of
    # the 10 s lease): within two of them
    ok = wait_for(lambda: all(clients_by_node(summary(n)) == want for n in nodes), 12)
    views = [summary(n) for n in nodes]
    check("every node lists the three nodes and their clients", ok,
          [clients_by_node(v) for v in views])
    for n, v in zip(nodes, views):
        v = v or {}
        check("%s: names in order, itself marked self, connected, 6 clients in all" % n.name,
              [x.get("name") for x in v.get("nodes", [])] == ["n0", "n1", "n2"] and
              [x.get("name") for x in v.get("nodes", []) if x.get("self")] == [n.name] and
              v.get("node") == n.name and v.get("cluster") == "sum" and
              v.get("state") == "connected" and v.get("nodes_count") == 3 and
              v.get("clients") == 6, v)

    # ---- /metrics ------------------------------------------------------------------
    status, text = httpctl.metrics(nodes[1])
    mv = httpctl.metric_value
    check("/metrics: midge_node_info names the node and the cluster",
          mv(text, "midge_node_info", {"node": "n1", "cluster": "sum"}) == 1,
          [x for x in text.splitlines() if "node_info" in x])
    check("/metrics: three nodes, each one's clients",
          mv(text, "midge_cluster_nodes") == 3 and
          [mv(text, "midge_cluster_node_clients", {"node": k}) for k in ("n0", "n1", "n2")] ==
          [1, 2, 3], [x for x in text.splitlines() if x.startswith("midge_cluster_node")])
    check("/metrics: the link to NATS", mv(text, "midge_cluster_connected") == 1 and
          mv(text, "midge_cluster_disconnects_total") == 0 and
          mv(text, "midge_cluster_dropped_messages_total", {"direction": "out"}) == 0)
    if shutil.which("promtool"):
        pr = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=20)
        check("promtool check metrics passes", pr.returncode == 0, pr.stdout + pr.stderr)
    else:
        check("promtool installed (Debian prometheus)", False)

    # ---- $SYS ------------------------------------------------------------------------
    s = Client("sys-reader", 4, nodes[0].port)
    s.connect()
    s.subscribe("$SYS/broker/midge/cluster/#", 0)
    got = {}
    end = time.monotonic() + 6
    seen = 0
    # the retained value first, then one a second: a slow node's first one
    # may predate the others' heartbeats, so read until the latest counts all
    while time.monotonic() < end and (
            len(got) < 2 or got.get("$SYS/broker/midge/cluster/clients/connected", 0) < 6):
        msgs = s.wait(seen + 1, 1)
        for m in msgs[seen:]:
            if m.topic.endswith("/nodes") or m.topic.endswith("/clients/connected"):
                got[m.topic] = int(m.payload)
        seen = len(msgs)
    s.close()
    check("$SYS/broker/midge/cluster/nodes is 3",
          got.get("$SYS/broker/midge/cluster/nodes") == 3, got)
    check("$SYS/broker/midge/cluster/clients/connected counts every node's clients (6 or more)",
          got.get("$SYS/broker/midge/cluster/clients/connected", 0) >= 6, got)

    # ---- a node dies -------------------------------------------------------------------
    # a persistent session on n2, checkpointed (docs/cluster.md, "A node that dies")
    p = Client("p2", 5, nodes[2].port, clean=True, expiry=300)
    p.connect()
    p.subscribe("p/t", 1)
    p.close()
    ok = wait_for(lambda: (mv(httpctl.metrics(nodes[2])[1], "midge_cluster_checkpoints_total") or 0) >= 1, 5)
    check("/metrics: n2 counts its session checkpoints", ok)
    nodes[2].signal(signal.SIGKILL)
    ok = wait_for(lambda: all(clients_by_node(summary(n)) == {"n0": 1, "n1": 2}
                              for n in nodes[:2]), 20)
    check("n2 killed: it leaves every summary once its lease lapses", ok,
          [clients_by_node(summary(n)) for n in nodes[:2]])

    def adopted():
        return sum(mv(httpctl.metrics(n)[1], "midge_cluster_dead_sessions_total",
                      {"how": "adopted"}) or 0 for n in nodes[:2])
    ok = wait_for(lambda: adopted() == 1, 10)
    check("/metrics: one survivor counts n2's session adopted", ok, adopted())

    # ---- outside a cluster -------------------------------------------------------------
    plain = httpctl.start("")
    status, o = httpctl.get(plain, "/api/v1/cluster")
    check("outside a cluster: /api/v1/cluster is 404", status == 404, (status, o))
    _, text = httpctl.metrics(plain)
    check("outside a cluster: no cluster metrics; midge_node_info has the host name as the "
          "events do, and an empty cluster", "midge_cluster_" not in text and
          httpctl.metric_value(text, "midge_node_info",
                               {"node": socket.gethostname(), "cluster": ""}) == 1,
          [x for x in text.splitlines() if "node_info" in x])
    plain.stop()
finally:
    for c in clients:
        c.close()
    clusterctl.stop(nodes, nats)
r.finish()
