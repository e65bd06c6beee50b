#!/usr/bin/python3
"""auth_worker_json.py - a midge auth worker backed by a JSON file of users.

    python3 auth_worker_json.py ENDPOINT users.json [--curve-server-key PUB
        --curve-secret-key FILE]
    python3 auth_worker_json.py --hash PASSWORD     # prints a password entry

users.json:
    {
      "users": {
        "alice": {"password": "pbkdf2_sha256$100000$<salt b64>$<hash b64>",
                  "acl": [{"permission": "allow", "action": "all",
                           "topic": "alice/#"}],
                  "session_expiry_max": 3600},
        "bob":   {"password": "...", "username": "bob@example"}
      },
      "anonymous": {"acl": [{"permission": "allow", "action": "subscribe",
                             "topic": "public/#"}]},
      "unknown": "defer"
    }

A user without "acl" gets no rules (the broker's acl_file, if any,
decides); "anonymous" absent refuses clients without a user name.
"unknown": "defer" answers "defer" for a user the file does not have
(and for clients without a user name when "anonymous" is absent): the
next source of midge_auth_chain decides (docs/auth.md, "The chain");
without it they are refused.

A user (or "anonymous") with "ask": true is answered "acl": "ask" at
CONNECT: midge then sends an `acl` request for each topic it publishes
on and each filter it subscribes to (docs/auth.md, "Per-message acl
requests"), and this worker decides them with the same "acl" rules
(first match wins, nothing matching denies; a subscription is allowed
when the rule's filter covers every topic of the requested one; EMQX's
"qos" and "retain" conditions are honoured, and a user whose rules have
none is answered "any_qos_retain": true, one request per topic). With
"ask_receive": true as well, the answer adds "receive": "ask": each
message midge is about to deliver to the client is asked about too
(action "receive", decided by the "subscribe" and "all" rules, as midge
decides a delivery by rules itself). The
protocol is midge's (docs/auth.md, "ZeroMQ auth workers"): a REQ socket
says ready, then answers one request at a time. Run several for more
throughput; midge gives each request to the least recently used one.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

import zmq


def hash_password(password, iterations=100000):
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "pbkdf2_sha256$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(),
                                       base64.b64encode(dk).decode())


def check_password(entry, password):
    try:
        kind, iterations, salt, want = entry.split("$")
        if kind != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(got, base64.b64decode(want))
    except (ValueError, TypeError):
        return False


def substitute(level, req):
    """%c and %u as a whole level: the client id and user name (a name
    holding '/', '+' or '#' never matches)."""
    for key, name in (("%c", req.get("client_id")), ("%u", req.get("username"))):
        if level == key:
            if name is None or any(ch in name for ch in "/+#"):
                return None
            return name
    return level


def covers(rule, topic, req):
    """Whether the rule's filter matches the topic (publish) or covers
    every topic of the filter (subscribe); '$' topics are not matched by
    a leading wildcard."""
    r = [substitute(level, req) for level in rule.split("/")]
    t = topic.split("/")
    if t[0].startswith("$") and r[0] in ("+", "#"):
        return False
    for i, level in enumerate(r):
        if level is None:
            return False
        if level == "#":
            return True
        if i >= len(t):
            return False
        if level == "+":
            if t[i] == "#":
                return False
            continue
        if level != t[i]:
            return False
    return len(r) == len(t)


def applies(rule, req):
    """EMQX's conditions of a rule: "qos" (a level or a list) against the
    request's QoS, "retain" (true, false, "all") against a publish's
    retain flag."""
    qos = rule.get("qos")
    if qos is not None and req.get("qos", 0) not in (qos if isinstance(qos, list) else [qos]):
        return False
    retain = rule.get("retain", "all")
    return req.get("action") != "publish" or retain == "all" or retain == req.get("retain")


def decide_acl(db, req):
    """An `acl` request: the first of the user's rules whose action,
    conditions and filter match decides; nothing matching denies. Returns
    the result and whether it holds for every QoS and retain flag (no
    rule of the user has a condition)."""
    user = req.get("username")
    entry = db.get("anonymous") if user is None else db.get("users", {}).get(user)
    action = req.get("action")
    if action == "receive":
        action = "subscribe"  # what a subscription may read, as midge's rules
    topic = req.get("topic", "")
    if action == "subscribe" and topic.startswith("$share/"):
        topic = topic.split("/", 2)[2] if topic.count("/") >= 2 else ""  # its filter
    rules = (entry or {}).get("acl", [])
    any_qr = not any("qos" in x or "retain" in x for x in rules)
    for rule in rules:
        if rule.get("action") not in (action, "all") or not applies(rule, req):
            continue
        if covers(rule.get("topic", ""), topic, req):
            return ("allow" if rule.get("permission") == "allow" else "deny"), any_qr
    return "deny", any_qr


def ask(answer, entry):
    """A connect answer for an "ask" user: its messages asked one by one,
    its deliveries too with "ask_receive"."""
    answer["acl"] = "ask"
    if entry.get("ask_receive"):
        answer["receive"] = "ask"


def decide(db, req):
    """The answer to one request (a dict)."""
    answer = {"version": 1, "id": req.get("id")}
    if req.get("type") == "acl":
        result, any_qr = decide_acl(db, req)
        answer.update(result=result)
        if any_qr:
            answer["any_qos_retain"] = True  # midge asks once per topic
        return answer
    if req.get("type") != "connect":
        answer.update(result="deny", reason_code=0x87)
        return answer
    user = req.get("username")
    defer = db.get("unknown") == "defer"
    if user is None:
        anon = db.get("anonymous")
        if anon is None:
            if defer:
                answer.update(result="defer")
            else:
                answer.update(result="deny", reason_code=0x87)  # not authorized
            return answer
        answer.update(result="allow")
        if anon.get("ask"):
            ask(answer, anon)
        elif "acl" in anon:
            answer["acl"] = anon["acl"]
        return answer
    entry = db.get("users", {}).get(user)
    if entry is None and defer:
        answer.update(result="defer")
        return answer
    password = base64.b64decode(req["password"]) if req.get("password") is not None else None
    if entry is None or password is None or not check_password(entry.get("password", ""), password):
        answer.update(result="deny", reason_code=0x86)  # bad user name or password
        return answer
    answer.update(result="allow")
    for key in ("acl", "session_expiry_max", "username"):
        if key in entry:
            answer[key] = entry[key]
    if entry.get("ask"):
        ask(answer, entry)  # the rules answer `acl` requests instead
    return answer


def serve(endpoint, path, curve=None):
    with open(path) as f:
        db = json.load(f)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    if curve:
        server_public, secret_file = curve
        with open(secret_file) as f:
            secret = f.read().strip().encode()
        sock.curve_secretkey = secret
        sock.curve_publickey = zmq.curve_public(secret)
        sock.curve_serverkey = server_public.encode()
    sock.connect(endpoint)
    sock.send_json({"version": 1, "type": "ready"})
    while True:
        try:
            req = json.loads(sock.recv())
        except ValueError:
            req = {}
        sock.send_string(json.dumps(decide(db, req)))


def main(argv):
    if len(argv) == 3 and argv[1] == "--hash":
        print(hash_password(argv[2]))
        return 0
    if len(argv) not in (3, 7):
        print(__doc__, file=sys.stderr)
        return 2
    curve = None
    if len(argv) == 7:
        opts = dict(zip(argv[3::2], argv[4::2]))
        curve = (opts["--curve-server-key"], opts["--curve-secret-key"])
    serve(argv[1], argv[2], curve)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
