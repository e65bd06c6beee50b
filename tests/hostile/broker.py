"""Start and stop the broker under test for the hostile-client suite.

A thin layer over tests/integration/brokerctl.py (the transport's
launcher: midge from $top_builddir, or Mosquitto when MIDGE_BROKER=mosquitto,
midge_* keys dropped for it). This module adds what the hostile cases
need: a TLS listener with a throw-away certificate, the broker's resident
memory and descriptor count, and the highest RLIMIT_NOFILE for the broker.

    b = start(config_text_or_None, extra_args=(), tls=False)
    b.port, b.tls_port, b.pid, b.stop(), b.log_text(), b.rss_kb(), b.alive()

The config text holds broker-wide keys only; start() appends the
listeners on free loopback ports. Every broker is stopped by its PID.
An ASan build is tested by pointing top_builddir at a build configured
with --enable-sanitizers.
"""

import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import brokerctl  # noqa: E402


def kind():
    return brokerctl.broker_kind()


def binary():
    return "/usr/sbin/mosquitto" if kind() == "mosquitto" else brokerctl.midge_binary()


def raise_nofile():
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


_tls_files = None


def tls_files():
    """A self-signed certificate and key for 127.0.0.1, made once per run."""
    global _tls_files
    if _tls_files:
        return _tls_files
    d = tempfile.mkdtemp(prefix="midge-hostile-tls-")
    key = os.path.join(d, "key.pem")
    cert = os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    # Mosquitto started as root drops to the mosquitto user before it
    # reads the certificate: the throw-away test key must be readable.
    os.chmod(d, 0o755)
    os.chmod(key, 0o644)
    os.chmod(cert, 0o644)
    _tls_files = (cert, key)
    return _tls_files


class Broker:
    def __init__(self, b, tls):
        self.b = b
        self.proc = b.proc
        self.pid = b.pid
        self.port = b.port
        self.tls_port = b.ports["port2"] if tls else None

    def alive(self):
        return self.b.alive()

    def rss_kb(self):
        """Resident memory (VmRSS) in KiB; 0 once the process is gone."""
        return max(0, brokerctl.rss_kib(self.pid))

    def fd_count(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return 0

    def log_text(self):
        return self.b.log_text()

    def stop(self, timeout=10.0):
        """SIGTERM by PID, SIGKILL after timeout; returns the exit status."""
        # Read the log first: brokerctl removes its directory on stop.
        self.last_log = self.b.log_text()
        rc = self.b.stop(timeout)
        self.log_text = lambda: self.last_log
        return rc


def start(config_text=None, extra_args=(), tls=False):
    """Starts the broker with the plain listener on {port} and, with tls,
    a TLS listener on {port2}. Raises RuntimeError if it does not come up."""
    text = (config_text or "") + "\nlistener {port} 127.0.0.1\n"
    if tls:
        cert, key = tls_files()
        text += "listener {port2} 127.0.0.1\ncertfile %s\nkeyfile %s\n" % (cert, key)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return Broker(brokerctl.start(text, extra_args, nofile=hard), tls)
