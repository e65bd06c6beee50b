"""Helpers for the cluster tests: a real nats-server with JetStream on a
free loopback port and a temporary store (stopped by PID), and midge nodes
joined to it through brokerctl."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"


class Nats:
    """nats-server -js on 127.0.0.1; restart() keeps its port and store."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="midge-nats-")
        self.port = brokerctl.free_port()
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "nats.log"), "a")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", os.path.join(self.dir, "js"), "-p", str(self.port),
             "-a", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if not brokerctl.wait_port(self.port, proc=self.proc):
            raise RuntimeError("nats-server did not start")

    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)

    def stop(self):
        self.kill(signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


def node_config(nats, name, cluster="t", extra=""):
    return ("listener {port} 127.0.0.1\nmidge_cluster %s\nmidge_node_name %s\n"
            "midge_cluster_name %s\nsys_interval 1\n%s\n" % (nats.url(), name, cluster, extra))


def start_node(nats, name, cluster="t", extra=""):
    b = brokerctl.start(node_config(nats, name, cluster, extra))
    b.name = name
    return b
