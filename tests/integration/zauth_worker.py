#!/usr/bin/python3
"""zauth_worker.py - an auth worker for the tests: allows everyone (with
the rules and fields given as JSON), or misbehaves on purpose.

    zauth_worker.py ENDPOINT [--delay MS] [--silent] [--log FILE]
                    [--answer JSON] [--deny CODE] [--curve SERVER_PUB SECRET]
                    [--by-user JSON]

--silent says ready and never answers; --delay waits before each answer;
--log appends each request's JSON on a line (the tests count them);
--answer is merged into each "allow" answer; --deny CODE denies all;
--by-user {"alice": {"result": "defer"}, "*": {...}} answers a request by
its user name ("" when it has none; "*" for the others, else as above).
`acl` requests (docs/auth.md): allowed, but a topic starting with
--acl-deny PREFIX is denied; --acl-deny-qos2-retained PREFIX denies a
publish on a topic starting with PREFIX at QoS 2 or retained (its QoS 0
and 1 non-retained ones are allowed); --acl-deny-receive PREFIX denies
a delivery (action receive) on a topic starting with PREFIX;
--acl-receive-delay MS waits before each answer about a delivery;
--acl-any answers
"any_qos_retain": true (one answer per topic); --acl-delay MS waits
before each answer; --acl-silent never answers one (nor anything after
it).
"""
import json
import sys
import time

import zmq


def main(argv):
    endpoint = argv[1]
    opts = {"delay": 0, "silent": False, "log": None, "answer": {}, "deny": None, "curve": None,
            "acl_deny": None, "acl_delay": 0, "acl_silent": False, "by_user": {},
            "acl_deny_qr": None, "acl_any": False, "acl_deny_receive": None,
            "acl_receive_delay": 0}
    i = 2
    while i < len(argv):
        a = argv[i]
        if a in ("--silent", "--acl-silent", "--acl-any"):
            opts[a[2:].replace("-", "_")] = True
            i += 1
            continue
        if a == "--curve":
            opts["curve"] = (argv[i + 1], argv[i + 2])
            i += 3
            continue
        v = argv[i + 1]
        if a == "--delay":
            opts["delay"] = int(v) / 1000.0
        elif a == "--log":
            opts["log"] = v
        elif a == "--answer":
            opts["answer"] = json.loads(v)
        elif a == "--deny":
            opts["deny"] = int(v)
        elif a == "--acl-deny":
            opts["acl_deny"] = v
        elif a == "--acl-deny-qos2-retained":
            opts["acl_deny_qr"] = v
        elif a == "--acl-delay":
            opts["acl_delay"] = int(v) / 1000.0
        elif a == "--acl-deny-receive":
            opts["acl_deny_receive"] = v
        elif a == "--acl-receive-delay":
            opts["acl_receive_delay"] = int(v) / 1000.0
        elif a == "--by-user":
            opts["by_user"] = json.loads(v)
        i += 2
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    if opts["curve"]:
        s.curve_serverkey = opts["curve"][0].encode()
        s.curve_secretkey = opts["curve"][1].encode()
        s.curve_publickey = zmq.curve_public(opts["curve"][1].encode())
    s.connect(endpoint)
    s.send_json({"version": 1, "type": "ready"})
    print("ready", flush=True)
    while True:
        req = json.loads(s.recv())
        if opts["log"]:
            with open(opts["log"], "a") as f:
                f.write(json.dumps(req) + "\n")
        if opts["silent"]:
            time.sleep(3600)
        if req.get("type") == "acl":
            if opts["acl_silent"]:
                time.sleep(3600)
            time.sleep(opts["acl_delay"])
            deny = opts["acl_deny"] and req["topic"].startswith(opts["acl_deny"])
            if req["action"] == "receive":
                time.sleep(opts["acl_receive_delay"])
                dr = opts["acl_deny_receive"]
                deny = deny or (dr and req["topic"].startswith(dr))
            qr = opts["acl_deny_qr"]
            if qr and req["action"] == "publish" and req["topic"].startswith(qr) and \
                    (req["qos"] == 2 or req["retain"]):
                deny = True
            ans = {"version": 1, "id": req["id"], "result": "deny" if deny else "allow"}
            if opts["acl_any"]:
                ans["any_qos_retain"] = True
            s.send_string(json.dumps(ans))
            continue
        if opts["delay"]:
            time.sleep(opts["delay"])
        by = opts["by_user"]
        mine = by.get(req.get("username") or "", by.get("*"))
        if mine is not None:
            ans = {"version": 1, "id": req["id"]}
            ans.update(mine)
        elif opts["deny"] is not None:
            ans = {"version": 1, "id": req["id"], "result": "deny", "reason_code": opts["deny"]}
        else:
            ans = {"version": 1, "id": req["id"], "result": "allow"}
            ans.update(opts["answer"])
        s.send_string(json.dumps(ans))


if __name__ == "__main__":
    main(sys.argv)
