#!/usr/bin/python3
"""test_http_openapi.py - the API's contract agrees with the code: every
route of http/routes.c (method and path) is in http/openapi.json and
docs/http.md, every path of the OpenAPI file is a route, every $ref
resolves, admin routes document 403, the server serves the same file at
/api/v1/openapi.json, and every route is answered by its handler (no
"no such path" or 405 for a route the table lists).

Prints "N passed, M failed" last.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import httpctl  # noqa: E402

R = brokerctl.Results("http openapi")
brokerctl.deadline(R, 60)
SRC = os.path.abspath(httpctl.TOP_SRCDIR)
TOKEN = "openapi-token-0123456789abcdef"


def routes():
    text = open(os.path.join(SRC, "http", "routes.c")).read()
    found = re.findall(r'\{"(GET|POST|DELETE|PUT|PATCH)", "([^"]+)", HTTP_ROLE_(\w+), (\w+)\}', text)
    return [(m, p, role) for m, p, role, _ in found]


def resolve(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def main():
    table = routes()
    R.check("routes found in http/routes.c", len(table) >= 15, table)
    raw = open(os.path.join(SRC, "http", "openapi.json"), "rb").read()
    doc = json.loads(raw)
    R.check("OpenAPI 3", doc.get("openapi", "").startswith("3."))
    paths = doc.get("paths", {})
    for method, path, role in table:
        op = paths.get(path, {}).get(method.lower())
        R.check("route %s %s is in openapi.json" % (method, path), op is not None)
        if op is not None and role == "ADMIN":
            R.check("admin route %s %s documents 403" % (method, path), "403" in op["responses"])
    in_table = {(m.lower(), p) for m, p, _ in table}
    for path, ops in paths.items():
        for method in ops:
            if method in ("get", "post", "put", "delete", "patch"):
                R.check("openapi %s %s is a route" % (method.upper(), path),
                        (method, path) in in_table)
    bad = [r for r in set(refs(doc)) if resolve(doc, r) is None]
    R.check("every $ref resolves", not bad, bad)
    md = open(os.path.join(SRC, "docs", "http.md")).read()
    for method, path, _ in table:
        R.check("docs/http.md documents %s %s" % (method, path), "%s %s" % (method, path) in md)

    b = httpctl.start("midge_http_token_file {files}/tokens\n", tokens={TOKEN: "admin"})
    st, _, body = httpctl.request(b, "GET", "/api/v1/openapi.json", token=TOKEN)
    R.check("served openapi.json is the file", st == 200 and body == raw)
    for method, path, _ in table:
        concrete = path.replace("{clientid}", "someone").replace("{topic}", "a/b") \
                       .replace("{file}", "app.js")
        q = "?limit=1" if method == "GET" and path.startswith("/api/v1/") and \
            path != "/api/v1/events" else ""
        if path == "/api/v1/events":
            s = httpctl.SSEReader(httpctl.sse_open(b, "x", token=TOKEN))
            s.read(1.0)
            R.check("GET /api/v1/events answers", s.headers and " 200 " in s.headers.splitlines()[0])
            s.sock.close()
            continue
        body = {"topic": "t"} if method == "POST" and path.endswith("publish") else None
        st, _, out = httpctl.request(b, method, concrete + q, token=TOKEN, body=body)
        err = httpctl.json_of(out) if out[:1] == b"{" else None
        R.check("%s %s reaches its handler" % (method, path),
                st != 405 and not (st == 404 and err and err.get("error") == "no such path"),
                (st, out[:200]))
    b.stop()


main()
R.finish()
