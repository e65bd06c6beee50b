#!/usr/bin/python3
"""auth_worker_oauth.py - a midge auth worker that checks OAuth2 access
tokens by token introspection (RFC 7662) against an identity provider.

    python3 auth_worker_oauth.py ENDPOINT INTROSPECTION_URL CLIENT_ID CLIENT_SECRET

The client sends its access token as the MQTT password (the user name is
not looked at). The worker POSTs `token=...` to INTROSPECTION_URL with
HTTP basic authentication as CLIENT_ID:CLIENT_SECRET and answers:
- "active": false, or no such token: deny, 0x86 (bad user name or password);
- active: allow, with the user name from "username" (else "sub"), the
  session expiry capped at the token's remaining life ("exp"), and rules
  from the scopes "mqtt:publish:FILTER", "mqtt:subscribe:FILTER" and
  "mqtt:all:FILTER" (no such scope: no rules, midge's acl_file decides);
- the provider unreachable or answering garbage: deny, 0x88 (server
  unavailable), and the decision is not cached ("cache": false).

A token's rules are checked by midge for every message; the token's expiry
caps the session, not the connection (disconnecting clients whose token
expired is the JWT source's job in midge, not this example's).
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import zmq


def introspect(url, client_id, secret, token, timeout=2.0):
    """The provider's JSON answer (a dict), or None when it cannot be had."""
    body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    cred = base64.b64encode(("%s:%s" % (client_id, secret)).encode()).decode()
    req.add_header("Authorization", "Basic " + cred)
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            out = json.loads(resp.read(1 << 20))
            return out if isinstance(out, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def rules_from_scope(scope):
    rules = []
    for s in (scope or "").split():
        parts = s.split(":", 2)
        if len(parts) == 3 and parts[0] == "mqtt" and parts[1] in ("publish", "subscribe", "all"):
            rules.append({"permission": "allow", "action": parts[1], "topic": parts[2]})
    return rules


def decide(cfg, req):
    answer = {"version": 1, "id": req.get("id")}
    if req.get("type") != "connect" or req.get("password") is None:
        answer.update(result="deny", reason_code=0x86)
        return answer
    token = base64.b64decode(req["password"]).decode("utf-8", "replace")
    info = introspect(cfg["url"], cfg["client_id"], cfg["secret"], token)
    if info is None:
        answer.update(result="deny", reason_code=0x88, cache=False)
        return answer
    now = int(time.time())
    exp = info.get("exp")
    if not info.get("active") or (isinstance(exp, int) and exp <= now):
        answer.update(result="deny", reason_code=0x86)
        return answer
    answer["result"] = "allow"
    user = info.get("username") or info.get("sub")
    if isinstance(user, str) and user:
        answer["username"] = user
    if isinstance(exp, int):
        answer["session_expiry_max"] = exp - now
        answer["cache"] = False  # the token's life, not midge's cache, bounds it
    rules = rules_from_scope(info.get("scope"))
    if rules:
        answer["acl"] = rules
    return answer


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    cfg = {"url": argv[2], "client_id": argv[3], "secret": argv[4]}
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.connect(argv[1])
    sock.send_json({"version": 1, "type": "ready"})
    while True:
        try:
            req = json.loads(sock.recv())
        except ValueError:
            req = {}
        sock.send_string(json.dumps(decide(cfg, req)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
