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
	if [ "$f" -ne 0 ]; then
		echo "FAILED: $log ($res)"
		# what failed, for a reader who sees only the end of the output
		grep -E '^(FAIL |not ok|Traceback|[A-Za-z]*Error)|ThreadSanitizer|AddressSanitizer|runtime error' \
			"$log" 2>/dev/null | head -n 6 | cut -c1-400 | sed 's/^/    /'
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
# sanitizer reports written beside the logs (build.sh's log_path)
for rep in $(find "${@:-.}" -maxdepth 1 -name 'tsan.*' 2>/dev/null | sort | head -n 3); do
	echo "REPORT: $rep"
	grep -E '^(WARNING|SUMMARY)|^    #[0-3] ' "$rep" | head -n 12 | cut -c1-300 | sed 's/^/    /'
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
