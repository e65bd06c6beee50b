"""examples/auth_worker_oauth.py end to end: midge asks the worker, the
worker asks a small OAuth2 introspection endpoint (RFC 7662) this test
runs (http.server on loopback, client credentials checked):
- an active token: CONNACK 0, the user name is the token's subject, the
  session expiry is capped at the token's remaining life, and the token's
  scopes are the client's rules (publish outside them is dropped,
  subscribe outside them refused);
- an inactive or unknown token: 0x86; an expired one: 0x86;
- the provider down: 0x88, not cached (the next CONNECT asks again).
midge only."""

import base64
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import publish_packet, read_packet, spawn, kill, subscribe_packet  # noqa: E402
from test_zauth_lib import connect3, connect5, received_topics  # noqa: E402

r = brokerctl.Results("auth worker oauth")
brokerctl.deadline(r, 60)
HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "..", "..", "examples", "auth_worker_oauth.py")

now = int(time.time())
TOKENS = {
    "tok-alice": {"active": True, "sub": "alice", "exp": now + 120,
                  "scope": "openid mqtt:publish:alice/# mqtt:subscribe:alice/#"},
    "tok-old": {"active": True, "sub": "old", "exp": now - 10},
    "tok-revoked": {"active": False},
}
asked = []
GOOD_AUTH = "Basic " + base64.b64encode(b"midge:s3cret").decode()


class IdP(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if self.headers.get("Authorization") != GOOD_AUTH:
            self.send_response(401)
            self.end_headers()
            return
        tok = form.get("token", [""])[0]
        asked.append(tok)
        body = json.dumps(TOKENS.get(tok, {"active": False})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


idp = ThreadingHTTPServer(("127.0.0.1", 0), IdP)
threading.Thread(target=idp.serve_forever, daemon=True).start()
url = "http://127.0.0.1:%d/introspect" % idp.server_address[1]

b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n"
                    "midge_auth_endpoint ipc://{dir}/auth\nmidge_auth_timeout_ms 3000\n"
                    "midge_auth_cache_ttl 60\n")
w = spawn(["/usr/bin/python3", WORKER, "ipc://%s/auth" % b.dir, url, "midge", "s3cret"])

rc, props, s = connect5(b.port, "o1", "x", "tok-alice",
                        props=b"\x11" + (3600).to_bytes(4, "big"))
r.check("active token: CONNACK 0, session expiry capped at the token's life",
        rc == 0 and 100 <= props.get(0x11, 0) <= 120, (rc, props))
s.close()
time.sleep(0.2)
r.check("the user name is the token's subject", "user 'alice'" in b.log_text())
rc, s = connect3(b.port, "o1b", "x", "tok-alice")
s.sendall(subscribe_packet(1, "bob/#", 0))
p = read_packet(s)
r.check("subscribe outside the token's scopes: refused", p and p[1][2] == 0x80, p)
s.sendall(subscribe_packet(2, "alice/#", 0))
p = read_packet(s)
r.check("subscribe inside the scopes: granted", p and p[1][2] == 0x00, p)
s.sendall(publish_packet("bob/x", b"no"))
s.sendall(publish_packet("alice/x", b"yes"))
topics = received_topics(s, 2.0, 0.5)
r.check("publish: only alice/x goes through", topics == ["alice/x"], topics)
s.close()
for tok, what in (("tok-revoked", "inactive"), ("tok-old", "expired"), ("nope", "unknown")):
    rc, props, s = connect5(b.port, "o-" + tok, "x", tok)
    r.check("%s token: 0x86" % what, rc == 0x86, rc)
    s.close()
port = idp.server_address[1]
idp.shutdown()
idp.server_close()
rc, props, s = connect5(b.port, "o2", "x", "tok-alice2")
r.check("provider down: 0x88", rc == 0x88, rc)
s.close()
TOKENS["tok-alice2"] = {"active": True, "sub": "alice"}
idp = ThreadingHTTPServer(("127.0.0.1", port), IdP)
threading.Thread(target=idp.serve_forever, daemon=True).start()
rc, props, s = connect5(b.port, "o3", "x", "tok-alice2")
r.check("provider back: the same token is let in (the 0x88 was not cached)", rc == 0, rc)
s.close()
idp.shutdown()
kill(w)
r.finish()
