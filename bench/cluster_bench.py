#!/usr/bin/python3
"""Cross-node point-to-point throughput of a midge cluster against a single
node, in one run: a nats-server with JetStream and two midge nodes on free
loopback ports; midge-loadgen p2p at QoS 0 and 1 with publishers on node
n0 and subscribers on n0 (single node: the cluster has nothing to carry) and
then on n1 (every message crosses NATS). Prints each RESULT line and the
ratios (target: cross-node >= 50 % of single node), and the CPU seconds of
the two brokers and of nats-server per million messages.

  bench/cluster_bench.py [--duration S] [--pairs N] [--build DIR]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "build"))
    a = ap.parse_args()
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
        for i in range(2):
            port = free_port()
            conf = os.path.join(work, "n%d.conf" % i)
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous true\nmidge_hooks_endpoint none\n"
                        "midge_cluster nats://127.0.0.1:%d\nmidge_node_name n%d\n"
                        "midge_cluster_name bench\nmax_queued_messages 100000\n" % (port, np, i))
            p = subprocess.Popen([os.path.join(a.build, "midge"), "-c", conf],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            if not wait_port(port, p):
                sys.exit("midge n%d did not start" % i)
            nodes.append((p, port))
        loadgen = os.path.join(a.build, "bench", "midge-loadgen")
        rates = {}
        for qos in (0, 1):
            for mode in ("single", "cross"):
                sub = nodes[0][1] if mode == "single" else nodes[1][1]
                cpu0 = [cpu_seconds(p.pid) for p in (nodes[0][0], nodes[1][0], nats)]
                out = subprocess.run(
                    [loadgen, "-p", str(nodes[0][1]), "--sub-port", str(sub), "-w", "p2p",
                     "-q", str(qos), "-c", str(a.pairs), "-d", str(a.duration), "-u", "1",
                     "--quiet", "-l", "%s-qos%d" % (mode, qos)],
                    capture_output=True, text=True, timeout=a.duration + 60).stdout.strip()
                cpu1 = [cpu_seconds(p.pid) for p in (nodes[0][0], nodes[1][0], nats)]
                line = out.splitlines()[-1] if out else "(no result)"
                rate = result_field(line, "msg_per_s")
                rates[(mode, qos)] = rate
                n = max(rate * a.duration, 1)
                print(line)
                print("  cpu s per million messages (whole run incl. warm-up): n0 %.2f, n1 %.2f, "
                      "nats-server %.2f" % tuple((c1 - c0) / n * 1e6 for c0, c1 in zip(cpu0, cpu1)))
        for qos in (0, 1):
            s, c = rates[("single", qos)], rates[("cross", qos)]
            print("QoS %d: single node %.0f msg/s, cross-node %.0f msg/s: %.0f %% (target >= 50 %%)"
                  % (qos, s, c, 100.0 * c / s if s else 0))
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
