#!/usr/bin/python3
"""Turns the output of the hostile groups into the Markdown table of
docs/ROBUSTNESS.md.

    report.py midge=DIR1 Mosquitto=DIR2 ... > table.md

Each LABEL=DIR names a column; each directory holds test_GROUP.log files (the stdout of each group run
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
    cols = [a.split("=", 1) for a in sys.argv[1:]]
    res = [(label, load(d)) for label, d in cols]
    names = []
    for _, r in res:
        names += [n for n in r if n not in names]
    print("| case | " + " | ".join(label for label, _ in res) + " |")
    print("|---|" + "---|" * len(res))
    for n in names:
        print("| %s | %s |" % (n, " | ".join(cell(r.get(n)) for _, r in res)))
    print()
    for label, r in res:
        p = sum(1 for v in r.values() if v[0] == "PASS")
        print("- %s: %d passed, %d failed." % (label, p, len(r) - p))


if __name__ == "__main__":
    main()
