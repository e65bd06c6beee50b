#!/bin/sh
# Adds up the results of `make check` in the build directories given.
# Every test program ends its log with "N passed, M failed"; a program
# whose log has no such line counts as one test, by its automake result.
# Prints the total as the last line and exits 1 if anything failed.
passed=0
failed=0
for trs in $(find "${@:-.}" -name '*.trs' | sort); do
	log=${trs%.trs}.log
	res=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
	line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" 2>/dev/null | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/')
		f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	else
		p=0; f=0
	fi
	case "$res" in
	PASS|XFAIL) [ -z "$line" ] && p=1 ;;
	SKIP) [ -z "$line" ] && { echo "SKIPPED (counted as failed): $log"; f=1; } ;;
	*) [ "$f" -eq 0 ] && f=1 ;;
	esac
	[ "$f" -ne 0 ] && echo "FAILED: $log ($res)"
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
