"""httpctl - the HTTP server of a midge started by brokerctl, for tests.

    import httpctl
    b = httpctl.start("midge_http_token_file {dir}/tokens\n", tokens={"t"*20: "admin"})
    status, headers, body = httpctl.request(b, "GET", "/api/v1/clients", token="t"*20)
    obj = httpctl.json_of(body)

start() adds "midge_http_listener {port2} 127.0.0.1" (unless the text has a
midge_http_listener line), writes the optional token and password files
into the broker's directory first ({dir}/tokens, {dir}/passwd, made with
mosquitto_passwd) and waits until the HTTP port accepts connections.
The dashboard directory is the source tree's http/dashboard.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile

import brokerctl

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")


def start(config="", tokens=None, users=None, wait=True):
    """users: {name: password} for {dir}/passwd; tokens: {token: role}."""
    pre = tempfile.mkdtemp(prefix="midge-http-files-")
    text = config
    if tokens:
        with open(os.path.join(pre, "tokens"), "w") as f:
            f.write("# token role\n")
            for t, role in tokens.items():
                f.write("%s %s\n" % (t, role))
        text = text.replace("{files}", pre)
    if users:
        path = os.path.join(pre, "passwd")
        first = True
        for u, p in users.items():
            cmd = ["mosquitto_passwd", "-b"] + (["-c"] if first else []) + [path, u, p]
            subprocess.run(cmd, check=True, capture_output=True, timeout=20)
            first = False
    text = text.replace("{files}", pre)
    if "midge_http_listener" not in text:
        text = "midge_http_listener {port2} 127.0.0.1\n" + text
    if "midge_http_dashboard_dir" not in text:
        text += "\nmidge_http_dashboard_dir %s\n" % os.path.join(
            os.path.abspath(TOP_SRCDIR), "http", "dashboard")
    b = brokerctl.start("listener {port} 127.0.0.1\n" + text)
    b.http_port = b.ports["port2"]
    b.files = pre
    if wait and not brokerctl.wait_port(b.http_port, proc=b.proc):
        raise RuntimeError("http port did not open:\n" + b.log_text())
    return b


def request(b, method, path, body=None, token=None, user=None, password=None, headers=None,
            timeout=10, tls_context=None, host="127.0.0.1"):
    """One request on a new connection. Returns (status, headers dict
    with lower-case names, body bytes)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if user is not None:
        h["Authorization"] = "Basic " + base64.b64encode(
            ("%s:%s" % (user, password)).encode()).decode()
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    if tls_context:
        c = http.client.HTTPSConnection(host, b.http_port, timeout=timeout, context=tls_context)
    else:
        c = http.client.HTTPConnection(host, b.http_port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def json_of(body):
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return None


def get(b, path, **kw):
    status, _, body = request(b, "GET", path, **kw)
    return status, json_of(body)


def metrics(b, **kw):
    status, _, body = request(b, "GET", "/metrics", **kw)
    return status, body.decode("utf-8", "replace")


def metric_value(text, name, labels=None):
    """The value of the sample name{labels} in a Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        if labels is None and key == name:
            return float(value)
        if labels is not None and key.startswith(name + "{") and all(
                '%s="%s"' % (k, v) in key for k, v in labels.items()):
            return float(value)
    return None


def sse_open(b, prefix="", token=None, timeout=10):
    """A raw socket with GET /api/v1/events sent; read with sse_events()."""
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=timeout)
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    from urllib.parse import quote
    s.sendall(("GET /api/v1/events?prefix=%s HTTP/1.1\r\nHost: x\r\n%s\r\n" %
               (quote(prefix, safe=""), auth)).encode())
    return s


class SSEReader:
    """Reads a chunked text/event-stream from a socket into events."""

    def __init__(self, sock):
        self.sock = sock
        self.raw = b""
        self.headers = None
        self.body = b""
        self.events = []

    def _dechunk(self):
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0] or b"0", 16)
            if len(self.raw) < i + 2 + size + 2:
                return
            self.body += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]

    def read(self, timeout=2.0):
        """Reads what arrives within timeout; returns the new events
        as (name, json object, id)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            data = b""
        if not data:
            return []
        self.raw += data
        if self.headers is None:
            i = self.raw.find(b"\r\n\r\n")
            if i < 0:
                return []
            self.headers = self.raw[:i].decode()
            self.raw = self.raw[i + 4:]
        self._dechunk()
        new = []
        while b"\n\n" in self.body:
            block, _, self.body = self.body.partition(b"\n\n")
            name, data, ident = None, b"", None
            for line in block.split(b"\n"):
                if line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"data: "):
                    data += line[6:]
                elif line.startswith(b"id: "):
                    ident = int(line[4:])
            if name:
                ev = (name, json.loads(data), ident)
                new.append(ev)
                self.events.append(ev)
        return new


def run_tests(results, tests):
    """Runs each test function; one that raises is a failure, never a skip."""
    for t in tests:
        try:
            t()
        except Exception as e:
            import traceback
            traceback.print_exc()
            results.check(t.__name__ + " ran", False, repr(e))
