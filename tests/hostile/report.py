#!/usr/bin/python3
"""Turns the output of the hostile groups into the Markdown table of
docs/ROBUSTNESS.md.

    report.py MIDGE_DIR MOSQUITTO_DIR > table.md

Each directory holds test_GROUP.log files (the stdout of each group run
against that broker). Not a test; a helper to keep the document honest.
"""

import os
import re
import sys

GROUPS = ["framing", "order", "content", "resources", "faults"]
LINE = re.compile(r"^(PASS|FAIL) ([\w.\-]+): (.*)$")


def load(d):
    out = {}
    for g in GROUPS:
        p = os.path.join(d, "test_%s.log" % g)
        if not os.path.exists(p):
            continue
        with open(p, errors="replace") as f:
            for line in f:
                m = LINE.match(line.rstrip("\n"))
                if m:
                    out[m.group(2)] = (m.group(1), m.group(3))
    return out


def cell(r):
    if r is None:
        return "not run"
    verdict, text = r
    text = text.replace("|", "/")
    text = re.sub(r"; probe \d+ ms$", "", text)
    if len(text) > 220:
        text = text[:217] + "..."
    return ("pass: " if verdict == "PASS" else "**FAIL**: ") + text


def main():
    midge, mosq = load(sys.argv[1]), load(sys.argv[2])
    names = list(midge) + [n for n in mosq if n not in midge]
    print("| case | midge | Mosquitto 2.0.11 |")
    print("|---|---|---|")
    for n in names:
        print("| %s | %s | %s |" % (n, cell(midge.get(n)), cell(mosq.get(n))))
    for label, res in (("midge", midge), ("Mosquitto", mosq)):
        p = sum(1 for v in res.values() if v[0] == "PASS")
        print("\n%s: %d passed, %d failed." % (label, p, len(res) - p), end="")
    print()


if __name__ == "__main__":
    main()
