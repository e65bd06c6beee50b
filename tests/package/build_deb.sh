#!/bin/sh
# build_deb.sh BUILDDIR OUTDIR - the Debian packages of midge, built as a
# packager builds them from a release: `make distdir` in BUILDDIR (a
# configured tree), that source tree moved into OUTDIR, then
# `dpkg-buildpackage -b -us -uc` there, two jobs, no tests inside
# (DEB_BUILD_OPTIONS=nocheck: `make check` already ran them). The .debs
# and the .changes end up in OUTDIR. Prints the time each step took.
set -eu
builddir=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$builddir/Makefile")
src="$out/midge-$version"

t0=$(date +%s)
rm -rf "$src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
make -s -C "$builddir" distdir distdir="$src" >/dev/null
t1=$(date +%s)
echo "distdir: $((t1 - t0)) s"

cd "$src"
DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -b -us -uc >"$out/dpkg-buildpackage.log" 2>&1 || {
	tail -n 40 "$out/dpkg-buildpackage.log"
	exit 1
}
t2=$(date +%s)
echo "dpkg-buildpackage -b: $((t2 - t1)) s"
ls "$out"/*.deb
