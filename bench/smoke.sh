#!/bin/sh
# bench/smoke.sh - proves the benchmark tool works; asserts nothing about speed.
#
# Runs `bench/compare --quick` against midge (from the build directory) and
# Mosquitto for every workload at QoS 0, 1 and 2 (MQTT 3.1.1), and p2p at
# QoS 1 and 2 in MQTT 5; then every workload over TLS (--tls, QoS 1), midge
# with and without its event publisher (--hooks, fan-in QoS 0), and - only
# when the FlashMQ binary is there - FlashMQ at both thread counts. It checks
# that every run produced a parseable result, that messages flowed, that the
# conn workload held all its connections, that TLS runs were TLS, that the
# hooks sink received events and accounts for every event midge offered
# (received + dropped = expected), and - for midge only, where it is a
# correctness property - that no QoS 1/2 message was lost and no QoS 2
# message was duplicated. Prints "N passed, M failed" last.
#
# Environment: top_srcdir, top_builddir (set by `make check`);
# BENCH_SMOKE_BROKERS=mosquitto to run without midge (default midge,mosquitto);
# MIDGE_FLASHMQ as for bench/compare.
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
# every workload over TLS
"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --brokers "$brokers" \
	--tls --qos 1 --json "$tmp/results-tls.json" > "$tmp/out-tls.txt" 2> "$tmp/err-tls.txt"
echo "compare (TLS) exited with $?"
cat "$tmp/err-tls.txt"
# midge with and without a consumer of its message events
hooks=no
case ",$brokers," in *,midge,*) hooks=yes ;; esac
if [ $hooks = yes ]; then
	"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --hooks \
		--json "$tmp/results-hooks.json" > "$tmp/out-hooks.txt" 2> "$tmp/err-hooks.txt"
	echo "compare (hooks) exited with $?"
	cat "$tmp/err-hooks.txt" "$tmp/out-hooks.txt"
fi
# persistence (ack mode) with persistent subscribers, and Mosquitto with persistence
pbrokers=
case ",$brokers," in *,midge,*) pbrokers=midge-persist ;; esac
case ",$brokers," in *,mosquitto,*) pbrokers=${pbrokers:+$pbrokers,}mosquitto-persist ;; esac
if [ -n "$pbrokers" ]; then
	"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --persist --brokers "$pbrokers" \
		--workloads p2p+ps --json "$tmp/results-persist.json" > "$tmp/out-persist.txt" \
		2> "$tmp/err-persist.txt"
	echo "compare (persist) exited with $?"
	cat "$tmp/err-persist.txt"
fi
# FlashMQ, when it is there: both thread counts, plain and TLS
flashmq=${MIDGE_FLASHMQ:-}
for cand in "$srcdir/../shared/peers/flashmq" "$srcdir/../../shared/peers/flashmq"; do
	[ -n "$flashmq" ] || { [ -x "$cand" ] && flashmq=$cand; }
done
if [ -n "$flashmq" ] && [ -x "$flashmq" ]; then
	"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --flashmq "$flashmq" \
		--brokers flashmq --flashmq-threads default,1 --workloads fanin,p2p --qos 0,1 \
		--json "$tmp/results-fmq.json" > "$tmp/out-fmq.txt" 2> "$tmp/err-fmq.txt"
	echo "compare (FlashMQ) exited with $?"
	cat "$tmp/err-fmq.txt"
	"$py" "$srcdir/bench/compare" --quick --build-dir "$builddir" --flashmq "$flashmq" \
		--brokers flashmq --tls --workloads fanin,conn --qos 1 \
		--json "$tmp/results-fmq-tls.json" > "$tmp/out-fmq-tls.txt" 2> "$tmp/err-fmq-tls.txt"
	echo "compare (FlashMQ over TLS) exited with $?"
	cat "$tmp/err-fmq-tls.txt"
else
	flashmq=
	echo "FlashMQ not found (../shared/peers/flashmq, MIDGE_FLASHMQ): its part skipped"
fi

"$py" - "$tmp" "$brokers" "$hooks" "$flashmq" "$pbrokers" <<'EOF'
import json
import os
import sys

tmp, brokers = sys.argv[1], sys.argv[2].split(",")
hooks, flashmq = sys.argv[3] == "yes", sys.argv[4]
pbrokers = [b for b in sys.argv[5].split(",") if b]
# (results file, MQTT version, workload, QoS) expected for every broker
plan = [("results.json", "3.1.1", w, q) for w in ("fanin", "fanout", "p2p")
        for q in (0, 1, 2)]
plan += [("results.json", "3.1.1", "conn", 0)]
plan += [("results5.json", "5", "p2p", q) for q in (1, 2)]
plan += [("results-rate.json", "3.1.1", w, 1) for w in ("fanin", "fanout")]
plan += [("results-tls.json", "3.1.1", w, 1 if w != "conn" else 0)
         for w in ("fanin", "fanout", "p2p", "conn")]
plan = [(b, f, m, w, q) for b in brokers for f, m, w, q in plan]
if hooks:
    plan += [(b, "results-hooks.json", "3.1.1", "fanin", 0) for b in ("midge", "midge-hooks")]
plan += [(b, "results-persist.json", "3.1.1", "p2p+ps", 1) for b in pbrokers]
if flashmq:
    plan += [(b, "results-fmq.json", "3.1.1", w, q) for b in ("flashmq", "flashmq-t1")
             for w in ("fanin", "p2p") for q in (0, 1)]
    plan += [("flashmq", "results-fmq-tls.json", "3.1.1", w, 1 if w != "conn" else 0)
             for w in ("fanin", "conn")]
results = {}
for name in sorted({f for _b, f, _m, _w, _q in plan}):
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


for b, fname, mqtt, w, q in plan:
    runs = [r for r in results[fname] if r.get("broker") == b
            and r.get("workload") == w and r.get("qos") == q]
    # results-tls.json -> "tls"
    run = fname[len("results-"):-len(".json")] if fname != "results.json" else ""
    name = "%s %s qos%d mqtt%s %s" % (b, w, q, mqtt, run)
    check(len(runs) == 1, name + ": one result")
    if not runs:
        continue
    r = runs[0]
    check(str(r.get("mqtt")) == mqtt, name + ": ran MQTT %s" % r.get("mqtt"))
    check(r.get("ok") == 1 and r.get("exit") == 0,
          name + ": run succeeded (%s)" % r.get("stderr", ""))
    check(r.get("errors", 1) == 0,
          name + ": no refused, closed or failed connection (errors=%s)" % r.get("errors"))
    want_tls = 1 if "tls" in fname else 0
    check(r.get("tls") == want_tls, name + ": tls=%s (want %d)" % (r.get("tls"), want_tls))
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
    if fname != "results-rate.json":  # at 2000 msg/s a second may show no CPU tick
        check(r.get("msg_per_cpu_s", 0) > 0, name + ": msg per broker CPU-second measured")
    if b == "midge-hooks":
        ev, exp, drop = (r.get(k, -1) for k in ("hooks_events", "hooks_expected",
                                                  "hooks_midge_dropped"))
        check(ev > 0, name + ": the sink received message events (%s)" % ev)
        # every event midge offered the sink either arrived or was counted
        # dropped (a few at the edges of the subscription may be neither)
        check(exp > 0 and 0.95 * exp <= ev + drop <= exp,
              name + ": received %s + dropped %s = expected %s" % (ev, drop, exp))
    elif fname == "results-hooks.json":
        check("hooks_events" not in r, name + ": no sink without hooks")
    if fname == "results-rate.json":
        # --total-rate 2000: the subscribers receive 2000 msg/s in all
        check(1800 <= r.get("msg_per_s", 0) <= 2200,
              name + ": fixed rate held (%s msg/s for 2000)" % r.get("msg_per_s"))
    if b == "midge-persist":
        # ack mode: the store committed (figures from midge's closing line)
        check(r.get("store_msgs_per_commit", -1) >= 0 and r.get("store_fsyncs_per_s", 0) > 0,
              name + ": store figures read (%s bodies/commit, %s fsyncs/s)"
              % (r.get("store_msgs_per_commit"), r.get("store_fsyncs_per_s")))
        check(r.get("ack_p99_us", 0) > 0, name + ": publish -> PUBACK latency measured")
        check(r.get("lost") == 0, name + ": lost=%s (must be 0)" % r.get("lost"))
    if b == "midge" and q >= 1:
        # MQTT 3.1.1 sections 4.3.2 and 4.3.3: a QoS 1/2 message reaches the
        # subscriber; nothing here disconnects, so nothing may be lost
        check(r.get("lost") == 0, name + ": lost=%s (must be 0)" % r.get("lost"))
    if b == "midge" and q == 2:
        check(r.get("dup") == 0, name + ": dup=%s (QoS 2 is exactly once)" % r.get("dup"))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
