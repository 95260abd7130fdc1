#!/bin/sh
# Puts CIFAR-10 (binary version) into data/cifar-10-batches-bin/ under the
# repository root, where the library looks by default.
#
# Source, first that applies:
#   1. $DMVJND_CIFAR_TARBALL: a cifar-10-binary.tar.gz already on this machine;
#   2. ../shared/data/cifar-10-binary.tar.gz next to the repository;
#   3. the official archive, downloaded with curl or wget and checked against
#      its published md5.
# A local tarball is checked with the sha256 file beside it when there is one
# (cifar-10-binary.sha256 or <tarball>.sha256); the unpacked files are checked
# with cifar-10-batches-bin.sha256 beside it when there is one.
#
# Idempotent: when the six .bin files are there with the right size (and the
# class list too), nothing is done. Unpacking goes to a temporary folder that
# is moved into place only when complete, so an interrupted run leaves no
# half-written data behind that a later run would accept.
set -eu

URL=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
MD5=c32a1d4ab5d03f1284b67883e8d87530
RECORD_FILE_BYTES=30730000 # 10000 records x 3073 bytes
FILES="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin"

root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/data"
dest="$data/cifar-10-batches-bin"

say() { printf 'get-cifar10: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# 0 when $1 holds the complete, right-sized data set.
is_complete() {
    [ -f "$1/batches.meta.txt" ] || return 1
    for f in $FILES; do
        [ -f "$1/$f" ] || return 1
        [ "$(wc -c < "$1/$f" | tr -d ' ')" = "$RECORD_FILE_BYTES" ] || return 1
    done
}

# Portable digests (GNU coreutils or BSD/macOS tools).
sha256_of() {
    if command -v sha256sum > /dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}
md5_of() {
    if command -v md5sum > /dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
    else md5 -q "$1"; fi
}

if is_complete "$dest"; then
    say "already present: $dest"
    exit 0
fi

mkdir -p "$data"
tmp=$(mktemp -d "$data/.get-cifar10.XXXXXX")
# EXIT cleans up; INT/TERM must exit explicitly for the EXIT trap to run in every sh.
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

tarball=""
if [ -n "${DMVJND_CIFAR_TARBALL:-}" ]; then
    [ -f "$DMVJND_CIFAR_TARBALL" ] || die "DMVJND_CIFAR_TARBALL=$DMVJND_CIFAR_TARBALL: no such file"
    tarball=$DMVJND_CIFAR_TARBALL
elif [ -f "$root/../shared/data/cifar-10-binary.tar.gz" ]; then
    tarball="$root/../shared/data/cifar-10-binary.tar.gz"
fi

if [ -n "$tarball" ]; then
    say "using local archive $tarball"
    dir=$(dirname "$tarball")
    base=$(basename "$tarball")
    sums=""
    for s in "$tarball.sha256" "$dir/${base%.tar.gz}.sha256"; do
        if [ -f "$s" ]; then sums=$s; break; fi
    done
    if [ -n "$sums" ]; then
        # The line naming the archive, else the file's first line.
        want=$(awk -v b="$base" '{ n = $2; sub(/^\*/, "", n) } n == b { print $1; exit }' "$sums")
        [ -n "$want" ] || want=$(awk 'NR == 1 { print $1 }' "$sums")
        got=$(sha256_of "$tarball")
        [ "$got" = "$want" ] || die "$tarball: sha256 $got, expected $want (from $sums)"
        say "sha256 ok"
    else
        say "no sha256 file beside the archive: not checked"
    fi
else
    say "downloading $URL"
    tarball="$tmp/cifar-10-binary.tar.gz"
    if command -v curl > /dev/null 2>&1; then
        curl -fL --retry 3 -o "$tarball" "$URL" || die "download failed"
    elif command -v wget > /dev/null 2>&1; then
        wget -O "$tarball" "$URL" || die "download failed"
    else
        die "neither curl nor wget found; download $URL yourself and set DMVJND_CIFAR_TARBALL"
    fi
    got=$(md5_of "$tarball")
    [ "$got" = "$MD5" ] || die "$URL: md5 $got, expected $MD5"
    say "md5 ok"
fi

say "unpacking"
tar -xzf "$tarball" -C "$tmp" cifar-10-batches-bin || die "$tarball: cannot unpack cifar-10-batches-bin/"
is_complete "$tmp/cifar-10-batches-bin" || die "$tarball: cifar-10-batches-bin/ is incomplete or has wrong sizes"

# Per-file sums, when the archive comes with them (the local copy does).
if [ -n "${dir:-}" ] && [ -f "$dir/cifar-10-batches-bin.sha256" ]; then
    while read -r want name; do
        [ -n "$name" ] || continue
        got=$(sha256_of "$tmp/$name")
        [ "$got" = "$want" ] || die "$name: sha256 $got, expected $want"
    done < "$dir/cifar-10-batches-bin.sha256"
    say "unpacked files match cifar-10-batches-bin.sha256"
fi

rm -rf "$dest"
mv "$tmp/cifar-10-batches-bin" "$dest"
say "ready: $dest"
