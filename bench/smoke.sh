#!/bin/sh
# bench/smoke.sh - proves the benchmark tool works; asserts nothing about speed.
#
# Runs `bench/compare --quick` against midge (from the build directory) and
# Mosquitto for every workload at QoS 0, 1 and 2 (MQTT 3.1.1), and p2p at
# QoS 1 and 2 in MQTT 5, then checks that every run
# produced a parseable result, that messages flowed, that the conn workload
# held all its connections, and - for midge only, where it is a correctness
# property - that no QoS 1/2 message was lost and no QoS 2 message was
# duplicated. Prints "N passed, M failed" last.
#
# Environment: top_srcdir, top_builddir (set by `make check`);
# BENCH_SMOKE_BROKERS=mosquitto to run without midge (default midge,mosquitto).
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${top_builddir:-$srcdir/build}
brokers=${BENCH_SMOKE_BROKERS:-midge,mosquitto}
py=/usr/bin/python3
[ -x "$py" ] || py=python3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/midge-smoke.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# every workload at QoS 0/1/2 in MQTT 3.1.1, then QoS 1/2 in MQTT 5
"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --brokers "$brokers" \
	--json "$tmp/results.json" > "$tmp/out.txt" 2> "$tmp/err.txt"
echo "compare (MQTT 3.1.1) exited with $?"
cat "$tmp/err.txt"
"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --brokers "$brokers" \
	--mqtt 5 --workloads p2p --qos 1,2 \
	--json "$tmp/results5.json" > "$tmp/out5.txt" 2> "$tmp/err5.txt"
echo "compare (MQTT 5) exited with $?"
cat "$tmp/err5.txt"
# fixed rate, as make bench's latency comparison runs it
"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --brokers "$brokers" \
	--total-rate 2000 --workloads fanin,fanout --qos 1 \
	--json "$tmp/results-rate.json" > "$tmp/out-rate.txt" 2> "$tmp/err-rate.txt"
echo "compare (fixed rate) exited with $?"
cat "$tmp/err-rate.txt"

"$py" - "$tmp" "$brokers" <<'EOF'
import json
import os
import sys

tmp, brokers = sys.argv[1], sys.argv[2].split(",")
# (results file, MQTT version, workload, QoS) expected for every broker
plan = [("results.json", "3.1.1", w, q) for w in ("fanin", "fanout", "p2p")
        for q in (0, 1, 2)]
plan += [("results.json", "3.1.1", "conn", 0)]
plan += [("results5.json", "5", "p2p", q) for q in (1, 2)]
plan += [("results-rate.json", "3.1.1", w, 1) for w in ("fanin", "fanout")]
results = {}
for name in ("results.json", "results5.json", "results-rate.json"):
    try:
        with open(os.path.join(tmp, name)) as f:
            results[name] = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        print("no results in %s: %s" % (name, e))
        results[name] = []

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what)


for b in brokers:
    for fname, mqtt, w, q in plan:
        runs = [r for r in results[fname] if r.get("broker") == b
                and r.get("workload") == w and r.get("qos") == q]
        name = "%s %s qos%d mqtt%s" % (b, w, q, mqtt)
        check(len(runs) == 1, name + ": one result")
        if not runs:
            continue
        r = runs[0]
        check(str(r.get("mqtt")) == mqtt, name + ": ran MQTT %s" % r.get("mqtt"))
        check(r.get("ok") == 1 and r.get("exit") == 0,
              name + ": run succeeded (%s)" % r.get("stderr", ""))
        check(r.get("errors", 1) == 0,
              name + ": no refused, closed or failed connection (errors=%s)" % r.get("errors"))
        if w == "conn":
            want = int(r.get("clients", -1))
            check(r.get("conns") == want, name + ": held %s of %s connections"
                  % (r.get("conns"), want))
            check(r.get("connect_per_s", 0) > 0, name + ": connect rate measured")
            check(r.get("connect_broker_us", -1) >= 0 and r.get("connect_gen_us", -1) >= 0,
                  name + ": CPU per connect measured (broker %s us, generator %s us)"
                  % (r.get("connect_broker_us"), r.get("connect_gen_us")))
            continue
        check(r.get("received", 0) > 0 and r.get("msg_per_s", 0) > 0,
              name + ": messages received in the measured window")
        check(r.get("lat_p50_us", 0) > 0 and r.get("lat_p999_us", 0) >= r.get("lat_p50_us", 0),
              name + ": latency percentiles ordered")
        check(r.get("unexpected", 1) == 0, name + ": no unexpected packets")
        if fname == "results-rate.json":
            # --total-rate 2000: the subscribers receive 2000 msg/s in all
            check(1800 <= r.get("msg_per_s", 0) <= 2200,
                  name + ": fixed rate held (%s msg/s for 2000)" % r.get("msg_per_s"))
        if b == "midge" and q >= 1:
            # MQTT 3.1.1 sections 4.3.2 and 4.3.3: a QoS 1/2 message reaches the
            # subscriber; nothing here disconnects, so nothing may be lost
            check(r.get("lost") == 0, name + ": lost=%s (must be 0)" % r.get("lost"))
        if b == "midge" and q == 2:
            check(r.get("dup") == 0, name + ": dup=%s (QoS 2 is exactly once)" % r.get("dup"))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
