#!/bin/sh
# Replays every seed corpus file through every fuzz program of this build
# (the plain replay driver, or libFuzzer in --enable-fuzzing builds, which
# runs the files it is given once each). Program fuzz/fuzz-NAME reads
# $top_srcdir/fuzz/corpus/NAME/. Each corpus file is one test: it passes
# when the program exits 0 on it. Prints "N passed, M failed" last.
set -u
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
passed=0
failed=0
for prog in ${FUZZERS:-}; do
	name=$(basename "$prog" | sed 's/^fuzz-//')
	corpus="$top_srcdir/fuzz/corpus/$name"
	if [ ! -d "$corpus" ]; then
		echo "FAIL: $prog: no corpus directory $corpus"
		failed=$((failed + 1))
		continue
	fi
	n=0
	for f in "$corpus"/*; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		if "$top_builddir/$prog" "$f" >/dev/null 2>"$top_builddir/fuzz/replay.err"; then
			passed=$((passed + 1))
		else
			echo "FAIL: $prog $f"
			cat "$top_builddir/fuzz/replay.err"
			failed=$((failed + 1))
		fi
	done
	if [ "$n" -eq 0 ]; then
		echo "FAIL: $prog: empty corpus $corpus"
		failed=$((failed + 1))
	fi
	echo "$prog: $n corpus files"
done
rm -f "$top_builddir/fuzz/replay.err"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
