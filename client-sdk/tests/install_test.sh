#!/bin/sh
# unit.sdk.install: the SDK as a user gets it.
#
#   install_test.sh BUILD_DIR [SOURCE_DIR]
#
# Installs BUILD_DIR with `cmake --install BUILD_DIR --prefix TMP`, checks that parley.h,
# libparley.so.0, libparley.a and lib/pkgconfig/parley.pc are there (the .pc naming TMP as
# its prefix), then compiles the minimal example of docs/sdk.md -- taken from the document
# between its sdk-example-begin/end markers, so the document cannot drift from the library --
# with `cc $(pkg-config --cflags --libs parley)` against the installed copy, linked twice:
# with the shared library (run through an rpath into TMP, never the build tree) and with the
# static one. Each program runs in its no-network form (`parley-hello -5`): it must print the
# installed version and the text of PARLEY_EMSGSIZE.
#
# In a sanitized tree (PARLEY_SANITIZE=ON in BUILD_DIR/CMakeCache.txt) the libraries are
# instrumented, so both programs are built with -fsanitize=address,undefined as well.
# Exit 0 when everything holds, 1 otherwise (the first failure is named on stderr).
set -eu

BUILD=${1:?usage: install_test.sh BUILD_DIR [SOURCE_DIR]}
SRC=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
DOC=$SRC/docs/sdk.md
CC=${CC:-cc}

fail() {
    echo "install_test: FAIL: $*" >&2
    exit 1
}
step() { echo "install_test: $*"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/parley-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix

# ---- install ----
step "cmake --install $BUILD --prefix $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 ||
    { cat "$TMP/install.log" >&2; fail "cmake --install failed"; }

for f in include/parley.h lib/libparley.so.0 lib/libparley.so lib/libparley.a \
    lib/pkgconfig/parley.pc; do
    [ -e "$PREFIX/$f" ] || fail "$f is not installed"
done
# libparley.so.0 is the SONAME the programs will ask for.
soname=$(readelf -d "$PREFIX/lib/libparley.so.0" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libparley.so.0 ] || fail "SONAME is '$soname', not libparley.so.0"

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
pc_prefix=$(pkg-config --variable=prefix parley) || fail "pkg-config cannot read parley.pc"
[ "$pc_prefix" = "$PREFIX" ] || fail "parley.pc says prefix=$pc_prefix, installed under $PREFIX"
version=$(pkg-config --modversion parley)
step "parley.pc: prefix $pc_prefix, version $version"

# ---- the example, from the document ----
[ -r "$DOC" ] || fail "$DOC not found"
awk '/<!-- sdk-example-begin -->/ { on = 1; next }
     /<!-- sdk-example-end -->/   { on = 0 }
     on && !/^```/' "$DOC" >"$TMP/parley-hello.c"
[ -s "$TMP/parley-hello.c" ] || fail "no example between the sdk-example markers in $DOC"
grep -q 'int main' "$TMP/parley-hello.c" || fail "the extracted example has no main()"

SAN=
if grep -q '^PARLEY_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
    step "sanitized tree: building the programs with $SAN"
fi
WARN="-Wall -Wextra -Wno-unused-parameter -Werror"
cflags=$(pkg-config --cflags parley)
libs=$(pkg-config --libs parley)

check_run() { # program, what
    out=$("$1" -5 2>&1) || fail "$2: exited $? ($out)"
    expected="libparley $version
-5: message larger than the peer accepts"
    [ "$out" = "$expected" ] || fail "$2 printed:
$out
expected:
$expected"
    step "$2: ok"
}

# Shared: exactly the command docs/sdk.md shows, plus an rpath into the install.
step "shared: $CC parley-hello.c \$(pkg-config --cflags --libs parley)"
# shellcheck disable=SC2086
$CC $SAN $WARN "$TMP/parley-hello.c" -o "$TMP/hello-shared" $cflags $libs \
    -Wl,-rpath,"$PREFIX/lib" || fail "the example does not compile against the shared library"
resolved=$(ldd "$TMP/hello-shared" | sed -n 's/^[[:space:]]*libparley\.so\.0 => \([^ ]*\).*/\1/p')
[ "$resolved" = "$PREFIX/lib/libparley.so.0" ] ||
    fail "hello-shared loads libparley.so.0 from '$resolved', not from the install"
check_run "$TMP/hello-shared" "shared"

# Static: libparley.a, its dependencies shared (docs/sdk.md, "Static linking"). Not
# `pkg-config --static`: that also asks for the static closure of libnice and GLib (GnuTLS,
# libunistring, ...), whose development files Debian does not install with them.
libdir=$(pkg-config --variable=libdir parley)
deps=$(pkg-config --print-requires-private parley)
# shellcheck disable=SC2086
dep_libs=$(pkg-config --libs $deps)
step "static: $CC parley-hello.c \$(pkg-config --cflags parley) $libdir/libparley.a \$(pkg-config --libs $(echo $deps)) -pthread"
# shellcheck disable=SC2086
$CC $SAN $WARN "$TMP/parley-hello.c" -o "$TMP/hello-static" $cflags "$libdir/libparley.a" \
    $dep_libs -pthread || fail "the example does not link against the static library"
if readelf -d "$TMP/hello-static" | grep -q 'NEEDED.*libparley'; then
    fail "hello-static still needs libparley.so"
fi
check_run "$TMP/hello-static" "static"

step "passed"
