#!/usr/bin/python3
"""A midge cluster against a single node, in one run: a nats-server with
JetStream and three midge nodes on free loopback ports.

Each configuration runs once per window (--windows, in-flight messages
per publisher) and its best rate is its capacity: a closed loop's rate
is its window over its latency, and a path through NATS has more hops
than one node, so a window that saturates one node leaves the cluster
waiting on latency.

- p2p: midge-loadgen p2p at QoS 0 and 1: first on a standalone midge
  (no cluster: the single node the target is measured against), then
  with publishers on node n0 and subscribers on n0 (a cluster member on
  its own: with the journal, QoS 1 still costs NATS work), and then on
  n1 (every message crosses NATS). Target: cross-node >= 50 % of the
  standalone node.
- fanin: the aggregate of three nodes. Single: one midge-loadgen fan-in
  (3 x P publishers, one wildcard subscriber) on the standalone midge.
  Aggregate: three
  loadgens at once, the publishers of the i-th on node i and its
  subscriber on node i+1 (every message crosses NATS), their rates
  added.

Prints each RESULT line, the ratios, and the CPU seconds of each broker
and of nats-server per million messages.

  bench/cluster_bench.py [--workload p2p|fanin|all] [--duration S]
                         [--pairs N] [--publishers P] [--windows W,W,...]
                         [--build DIR]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def result_field(line, key):
    for tok in line.split():
        if tok.startswith(key + "="):
            return float(tok.split("=", 1)[1])
    return 0.0


def cpu_line(cpu0, cpu1, msgs):
    n = max(msgs, 1)
    return ("  cpu s per million messages (whole run incl. warm-up): n0 %.2f, n1 %.2f, n2 %.2f, "
            "nats-server %.2f, standalone %.2f" % tuple((c1 - c0) / n * 1e6 for c0, c1 in zip(cpu0, cpu1)))


def run_loadgen(a, loadgen, args, label):
    return subprocess.Popen([loadgen] + args + ["-d", str(a.duration), "-u", "1", "--quiet",
                                                "-l", label],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def last_line(proc, timeout):
    out, _ = proc.communicate(timeout=timeout)
    out = (out or "").strip()
    return out.splitlines()[-1] if out else "(no result)"


def windows_run(a, loadgen, args, label, pids):
    """Runs the generator(s) once per window of --windows; returns the
    best rate and its window. A closed loop's rate is bounded by its
    window over its latency: a path with more hops needs a wider window
    to reach its capacity, and a wider one than needed costs a node
    queueing. Each configuration is measured at each window, and its
    capacity is the best of them; every run is printed."""
    best = (0.0, 0)
    for w in a.windows:
        cpu0 = [cpu_seconds(p) for p in pids]
        procs = [run_loadgen(a, loadgen, x + ["-W", str(w)], "%s-w%d" % (lab, w))
                 for x, lab in zip(args, label)]
        lines = [last_line(p, a.duration + 60) for p in procs]
        cpu1 = [cpu_seconds(p) for p in pids]
        rate = sum(result_field(x, "msg_per_s") for x in lines)
        for x in lines:
            print(x)
        print(cpu_line(cpu0, cpu1, rate * a.duration))
        best = max(best, (rate, w))
    return best


def ratio(x, y):
    return 100.0 * x / y if y else 0


def p2p(a, loadgen, nodes, solo, pids):
    rates = {}
    for qos in (0, 1):
        for mode in ("solo", "single", "cross"):
            pub = solo if mode == "solo" else nodes[0][1]
            sub = {"solo": solo, "single": nodes[0][1], "cross": nodes[1][1]}[mode]
            rates[(mode, qos)] = windows_run(
                a, loadgen, [["-p", str(pub), "--sub-port", str(sub), "-w", "p2p", "-q",
                              str(qos), "-c", str(a.pairs)]], ["%s-qos%d" % (mode, qos)], pids)
    for qos in (0, 1):
        (s, sw), (m, mw), (c, cw) = (rates[(x, qos)] for x in ("solo", "single", "cross"))
        print("QoS %d: standalone node %.0f msg/s (window %d), cross-node %.0f msg/s (window %d): "
              "%.0f %% (target >= 50 %%); a cluster member on its own %.0f msg/s (window %d; "
              "cross-node %.0f %% of it)" % (qos, s, sw, c, cw, ratio(c, s), m, mw, ratio(c, m)))


def fanin(a, loadgen, nodes, solo, pids):
    for qos in (0, 1):
        single, sw = windows_run(a, loadgen, [["-p", str(solo), "-w", "fanin", "-q", str(qos),
                                               "-c", str(3 * a.publishers)]],
                                 ["fanin-single-qos%d" % qos], pids)
        total, tw = windows_run(
            a, loadgen, [["-p", str(nodes[i][1]), "--sub-port", str(nodes[(i + 1) % 3][1]), "-w",
                          "fanin", "-q", str(qos), "-c", str(a.publishers)] for i in range(3)],
            ["fanin-n%d-to-n%d-qos%d" % (i, (i + 1) % 3, qos) for i in range(3)], pids)
        print("fan-in QoS %d: standalone node %.0f msg/s (window %d), three nodes (every message "
              "across NATS) %.0f msg/s in all (window %d): %.0f %%"
              % (qos, single, sw, total, tw, ratio(total, single)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--publishers", type=int, default=10, help="per node, fan-in")
    ap.add_argument("--windows", default="64,256,1024",
                    help="in-flight messages per publisher, each tried (comma-separated)")
    ap.add_argument("--workload", choices=("p2p", "fanin", "all"), default="all")
    ap.add_argument("--extra", default="", help="configuration lines for every node, \\n apart")
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "build"))
    a = ap.parse_args()
    a.windows = [int(w) for w in a.windows.split(",")]
    work = tempfile.mkdtemp(prefix="midge-cluster-bench-")
    procs = []
    try:
        np = free_port()
        nats = subprocess.Popen(["nats-server", "-js", "-sd", os.path.join(work, "js"), "-p",
                                 str(np), "-a", "127.0.0.1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        procs.append(nats)
        if not wait_port(np, nats):
            sys.exit("nats-server did not start")
        nodes = []
        for i in range(4):  # n0, n1, n2, and the standalone node
            port = free_port()
            conf = os.path.join(work, "n%d.conf" % i)
            cluster = ("midge_cluster nats://127.0.0.1:%d\nmidge_node_name n%d\n"
                       "midge_cluster_name bench\n%s\n" % (np, i, a.extra.replace("\\n", "\n"))
                       if i < 3 else "")
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous true\nmidge_hooks_endpoint none\n"
                        "max_queued_messages 100000\n%s" % (port, cluster))
            p = subprocess.Popen([os.path.join(a.build, "midge"), "-c", conf],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            if not wait_port(port, p):
                sys.exit("midge %s did not start" % ("n%d" % i if i < 3 else "standalone"))
            nodes.append((p, port))
        solo = nodes.pop()
        loadgen = os.path.join(a.build, "bench", "midge-loadgen")
        pids = [p.pid for p, _ in nodes] + [nats.pid, solo[0].pid]
        if a.workload in ("p2p", "all"):
            p2p(a, loadgen, nodes, solo[1], pids)
        if a.workload in ("fanin", "all"):
            fanin(a, loadgen, nodes, solo[1], pids)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
