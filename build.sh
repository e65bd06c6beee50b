#!/bin/sh
# midge's one entry point for building, running and testing from a checkout.
#
#   ./build.sh run [midge flags]   install what is missing, build, run midge
#                                  (default: localhost:1883)
#   ./build.sh test                install what is missing, build with -Werror,
#                                  run every test (unit, corpus replay,
#                                  integration, ASan+UBSan unit tests, unit and
#                                  integration tests under ThreadSanitizer with
#                                  the sockets on I/O threads, the Debian
#                                  package built and run unpacked, fuzzers for
#                                  FUZZ_SECONDS each when clang is there,
#                                  benchmark smoke run), print "N passed, M failed"
#   ./build.sh deb                 build the Debian packages (midge, libmidge0,
#                                  libmidge-dev) into build/deb/
#   ./build.sh deps | build | fuzz | bench | dist
#
# Build trees: build/ (normal), build-asan/ (sanitizers), build-tsan/
# (ThreadSanitizer), build-fuzz/ (clang libFuzzer). All are disposable.
set -eu

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

BUILD_PKGS="build-essential autoconf automake libtool pkg-config ragel pandoc libgnutls28-dev libzmq3-dev libuv1-dev libcunit1-dev libargon2-dev libwslay-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev libsystemd-dev libjwt-gnutls-dev libnats-dev"
TEST_PKGS="nats-server mosquitto-clients mosquitto python3 python3-paho-mqtt python3-zmq python3-jwt gnutls-bin procps argon2 chromium util-linux mount prometheus"
# Commands the tests need and the Debian packages that bring them, when
# they are not there already (a newer Node from elsewhere will do).
TEST_CMDS="node:nodejs npm:npm"
# The Debian package check (tests/package): dpkg-buildpackage's helpers,
# lintian, man -l. systemd-analyze is used when systemd is installed.
DEB_PKGS="debhelper lintian man-db"
FUZZ_PKGS="clang libclang-rt-14-dev"

say() { printf '== %s\n' "$*" >&2; }

# Installs the Debian/Ubuntu packages that are missing, nothing else.
deps() {
	missing=""
	for p in $BUILD_PKGS $TEST_PKGS $DEB_PKGS ${1:-}; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	for cp in $TEST_CMDS; do
		command -v "${cp%%:*}" >/dev/null 2>&1 || missing="$missing ${cp#*:}"
	done
	[ -z "$missing" ] && return 0
	apt_install $missing
}

# apt_install PKG...: installs the packages (apt-get update first).
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		say "missing packages: $* (install them with your package manager)"
		return 1
	fi
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	say "installing: $*"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# mosquitto (for comparison benchmarks) must not start a system broker
	# on 1883 behind our back where service managers exist.
	$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# configure_in DIR [configure args...]: (re)configures DIR when needed.
configure_in() {
	dir=$1
	shift
	[ -x configure ] || autoreconf -fi >/dev/null
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/Makefile" ]; then
		(cd "$dir" && "$top/configure" -q "$@")
	fi
}

# node and npm (the dashboard's browser test): Debian's nodejs and npm when
# node is missing (a NodeSource nodejs brings its own npm).
node_deps() {
	command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

# The npm packages of tests/dashboard, exactly as its lockfile says.
npm_deps() {
	d=tests/dashboard
	[ -d "$d/node_modules/puppeteer-core" ] && [ "$d/node_modules" -nt "$d/package-lock.json" ] &&
		return 0
	say "npm ci in $d"
	(cd "$d" && npm ci --no-audit --no-fund >/dev/null)
}

build() {
	configure_in build --enable-werror
	make -s -C build -j"$jobs"
}

run() {
	deps
	build
	say "starting build/midge $*"
	exec build/midge "$@"
}

fuzz() {
	command -v clang >/dev/null 2>&1 || { say "clang not found: fuzzers skipped"; return 0; }
	configure_in build-fuzz CC=clang --enable-fuzzing
	make -s -C build-fuzz -j"$jobs" fuzzers
	make -s -C build-fuzz fuzz-run FUZZ_SECONDS="$FUZZ_SECONDS"
}

# The Debian packages from `make distdir` of build/ (tests/package/build_deb.sh).
deb() {
	tests/package/build_deb.sh build build/deb
}

# tests/package/test_package.py, logged like an automake test so that
# tests/summary.sh counts its "N passed, M failed" line.
package_check() {
	d=build/package
	mkdir -p "$d"
	if top_builddir="$top/build" /usr/bin/python3 tests/package/test_package.py >"$d/test_package.log" 2>&1; then
		res=PASS
	else
		res=FAIL
	fi
	printf ':test-result: %s\n' "$res" >"$d/test_package.trs"
	echo "$res: tests/package/test_package.py ($(grep -m1 '^package build:' "$d/test_package.log" || echo 'no build'))"
	[ "$res" = PASS ]
}

test_all() {
	deps "$FUZZ_PKGS"
	node_deps && npm_deps || say "dashboard test: node packages missing (it will fail)"
	build
	status=0
	say "make check (unit, corpus replay, integration, benchmark smoke)"
	make -C build -j"$jobs" check >build/check.out 2>&1 || status=1
	grep -E '^(PASS|FAIL|XFAIL|XPASS|ERROR|SKIP):' build/check.out || true

	say "Debian package: built from make distdir, run unpacked"
	package_check || status=1

	say "unit tests under ASan + UBSan"
	configure_in build-asan --enable-sanitizers
	make -s -C build-asan -j"$jobs" check-unit >build-asan/check.out 2>&1 || status=1
	grep -E '^(PASS|FAIL|ERROR|SKIP):' build-asan/check.out || true

	# The sockets on two I/O threads (the default here is one thread in
	# all): every record between them and the engine under TSan. A race
	# report stops the broker (halt_on_error), so the test that met it
	# fails; the reports stay in build-tsan/tsan.*.
	say "unit and integration tests under ThreadSanitizer, 2 I/O threads"
	configure_in build-tsan --enable-tsan
	make -s -C build-tsan -j"$jobs" >/dev/null
	rm -f build-tsan/tsan.*
	MIDGE_IO_THREADS=2 MIDGE_SANITIZER=thread \
		TSAN_OPTIONS="halt_on_error=1 log_path=$top/build-tsan/tsan" \
		make -k -C build-tsan check-unit check-integration >build-tsan/check.out 2>&1 || status=1
	grep -E '^(PASS|FAIL|ERROR|SKIP):' build-tsan/check.out || true
	for f in build-tsan/tsan.*; do [ -f "$f" ] && { cat "$f"; status=1; }; done

	say "fuzzers, ${FUZZ_SECONDS}s each"
	fuzz >build/fuzz.out 2>&1 || status=1
	tail -n 20 build/fuzz.out

	dirs="build build-asan build-tsan"
	[ -d build-fuzz ] && dirs="$dirs build-fuzz"
	sh tests/summary.sh $dirs || status=1
	return $status
}

cmd=${1:-test}
[ $# -gt 0 ] && shift
case "$cmd" in
deps) deps "$FUZZ_PKGS" && node_deps && npm_deps ;;
deb) deps && build && deb ;;
build) deps && build ;;
run) run "$@" ;;
test) test_all ;;
fuzz) deps "$FUZZ_PKGS" && fuzz ;;
bench) deps && build && make -s -C build bench ;;
dist) deps && build && make -C build -j"$jobs" distcheck ;;
*) say "usage: $0 run|test|deps|build|deb|fuzz|bench|dist"; exit 2 ;;
esac
