#!/usr/bin/python3
"""auth_worker_scram.py - a midge auth worker serving MQTT 5 enhanced
authentication with SCRAM-SHA-256 (RFC 5802, RFC 7677), stdlib only.

    python3 auth_worker_scram.py ENDPOINT users.json
    python3 auth_worker_scram.py --entry PASSWORD   # prints a user entry

users.json:
    {"users": {"alice": {"salt": "<b64>", "iterations": 4096,
                         "stored_key": "<b64>", "server_key": "<b64>",
                         "acl": [{"permission": "allow", "action": "all",
                                  "topic": "alice/#"}]}}}

The file keeps no password, only what RFC 5802 lets a server keep
(StoredKey, ServerKey). The exchange, as midge relays it:

    CONNECT  Authentication Method "SCRAM-SHA-256", Data client-first
             -> request {"type": "auth", "step": "connect", "data": ...}
             <- {"result": "continue", "data": server-first}
    AUTH 0x18 to the client with server-first; its AUTH 0x18 client-final
             -> request {"step": "continue", "data": client-final}
             <- {"result": "allow", "data": server-final (v=...)}
    CONNACK 0x00 with server-final (the client checks the server too)

A re-authentication (AUTH 0x19) runs the same two steps ("step":
"reauthenticate" first). A bad proof is denied with 0x87 (Not
authorized); a method other than SCRAM-SHA-256 with 0x8C. A connect
request (no method) is denied: this worker serves only the method.

The exchange's state (the first messages, the nonce) lives in this
process between the two steps, keyed by the connection (client id, peer
address and port). midge gives every step of one exchange to the worker
that answered its first (docs/auth.md, "Several workers"), so run as many
of these as you like; one that dies takes its unfinished exchanges with it
(those clients are refused and connect again).
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

import zmq

METHOD = "SCRAM-SHA-256"
STATE_TTL = 60.0   # seconds an exchange may wait for its second step
STATE_MAX = 10000  # exchanges remembered at once


def b64(b):
    return base64.b64encode(b).decode()


def make_entry(password, iterations=4096):
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return {"salt": b64(salt), "iterations": iterations,
            "stored_key": b64(hashlib.sha256(client_key).digest()),
            "server_key": b64(hmac.new(salted, b"Server Key", "sha256").digest())}


def attrs(msg):
    """'a=1,b=2' -> {'a': '1', 'b': '2'}; ValueError when malformed."""
    out = {}
    for part in msg.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ValueError("bad attribute")
        out[part[0]] = part[2:]
    return out


class Scram:
    def __init__(self, users):
        self.users = users
        self.state = {}

    def key(self, req):
        return (req.get("client_id"), req.get("peer"), req.get("peer_port"), req.get("listener"))

    def first(self, req, data):
        """client-first -> server-first, or a deny code."""
        msg = data.decode("utf-8")
        if not msg.startswith("n,,"):  # no channel binding, no authzid
            return None, 0x87
        bare = msg[3:]
        a = attrs(bare)
        user = a.get("n", "").replace("=2C", ",").replace("=3D", "=")
        entry = self.users.get(user)
        cnonce = a.get("r", "")
        if not entry or not cnonce:
            return None, 0x87
        nonce = cnonce + b64(os.urandom(18))
        server_first = "r=%s,s=%s,i=%d" % (nonce, entry["salt"], entry["iterations"])
        now = time.monotonic()
        for k in [k for k, v in self.state.items() if v["t"] < now - STATE_TTL]:
            del self.state[k]
        if len(self.state) >= STATE_MAX:
            return None, 0x89
        self.state[self.key(req)] = {"user": user, "bare": bare, "sfirst": server_first,
                                     "nonce": nonce, "t": now}
        return server_first.encode(), 0

    def final(self, req, data):
        """client-final -> (server-final, user) or a deny code."""
        st = self.state.pop(self.key(req), None)
        if not st:
            return None, None, 0x87
        msg = data.decode("utf-8")
        without_proof, _, proof = msg.rpartition(",p=")
        a = attrs(without_proof)
        if a.get("r") != st["nonce"] or a.get("c") != "biws":
            return None, None, 0x87
        entry = self.users[st["user"]]
        auth_message = ("%s,%s,%s" % (st["bare"], st["sfirst"], without_proof)).encode()
        stored_key = base64.b64decode(entry["stored_key"])
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        client_key = bytes(x ^ y for x, y in zip(base64.b64decode(proof), signature))
        if len(client_key) != 32 or not hmac.compare_digest(
                hashlib.sha256(client_key).digest(), stored_key):
            return None, None, 0x87
        server_sig = hmac.new(base64.b64decode(entry["server_key"]), auth_message,
                              "sha256").digest()
        return ("v=" + b64(server_sig)).encode(), st["user"], 0

    def decide(self, req):
        answer = {"version": 1, "id": req.get("id")}
        if req.get("type") != "auth":
            answer.update(result="deny", reason_code=0x87)
            return answer
        if req.get("method") != METHOD:
            answer.update(result="deny", reason_code=0x8C)
            return answer
        try:
            data = base64.b64decode(req.get("data") or "", validate=True)
            if req.get("step") in ("connect", "reauthenticate"):
                out, code = self.first(req, data)
                if code:
                    answer.update(result="deny", reason_code=code)
                else:
                    answer.update(result="continue", data=b64(out))
            elif req.get("step") == "continue":
                out, user, code = self.final(req, data)
                if code:
                    answer.update(result="deny", reason_code=code)
                else:
                    answer.update(result="allow", data=b64(out), username=user)
                    acl = self.users[user].get("acl")
                    if acl is not None:
                        answer["acl"] = acl
            else:
                answer.update(result="deny", reason_code=0x87)
        except (ValueError, UnicodeDecodeError, KeyError):
            answer.update(result="deny", reason_code=0x87)
        return answer


def main(argv):
    if len(argv) == 3 and argv[1] == "--entry":
        print(json.dumps(make_entry(argv[2])))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[2]) as f:
        scram = Scram(json.load(f).get("users", {}))
    s = zmq.Context().socket(zmq.REQ)
    s.connect(argv[1])
    s.send_json({"version": 1, "type": "ready"})
    while True:
        req = json.loads(s.recv())
        s.send_json(scram.decide(req))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
