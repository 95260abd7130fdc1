#!/bin/sh
# `make install PREFIX=...` gives a dmvjnd that works from any folder with no
# --model (the shipped models installed under PREFIX/share/dmvjnd/models and
# found there); a JND model folder moved elsewhere still works through
# --model (its classifiers are resolved from its own folder), and refuses,
# naming the file, a classifier file replaced by another or missing;
# `make uninstall` removes what install put there; DESTDIR stages the files
# without changing the folder compiled in. Runs from a temporary folder
# outside the repository.
#
# The build is copied to a temporary BUILD so that installing under another
# PREFIX (which recompiles the one object that holds the models' folder)
# leaves the tree's own build untouched; OPT and SAN (set by make check, e.g.
# under make asan) compile that object as the rest was.
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
build=${BUILD:-build}
flags="OPT=${OPT:--O3}"
passed=0; failed=0; skipped=0
pass() { passed=$((passed + 1)); }
fail() { echo "test_install: FAIL $1"; [ -n "$2" ] && printf '%s\n' "$2" | sed 's/^/    /'; failed=$((failed + 1)); }
report() { echo "test_install: $passed passed, $failed failed, $skipped skipped"; [ "$failed" -eq 0 ]; exit $?; }

tmp=$(mktemp -d /tmp/dmvjnd_install.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/build"
for f in src cli gen libdmvjnd.a libdmvjnd.so dmvjnd; do
    [ -e "$build/$f" ] && cp -a "$build/$f" "$tmp/build/"
done
unset DMVJND_MODELS DESTDIR
if ! out=$(make -s install PREFIX="$tmp/p" BUILD="$tmp/build" "$flags" SAN="${SAN:-}" 2>&1); then
    fail "make install PREFIX=$tmp/p" "$out"
    report
fi
bin=$tmp/p/bin/dmvjnd
models=$tmp/p/share/dmvjnd/models
for m in jnd alexnet vgg11bn resnet20 densenet40bc; do
    if cmp -s "$repo/models/${m}_v1.0.safetensors" "$models/${m}_v1.0.safetensors"; then pass
    else fail "make install: $models/${m}_v1.0.safetensors missing or different"; fi
done
for c in jpeg webp; do
    if cmp -s "$repo/models/jnd_v1.0.alloc-$c.json" "$models/jnd_v1.0.alloc-$c.json"; then pass
    else fail "make install: $models/jnd_v1.0.alloc-$c.json (jnd-alloc's calibration) missing or different"; fi
done

# A 32x32 RGB PNG (libpng's format; written with Python's zlib, no imaging library).
mkdir -p "$tmp/work"
cd "$tmp/work" || exit 1
if ! /usr/bin/python3 - <<'EOF'
import struct, zlib
w = h = 32
raw = b"".join(b"\0" + bytes(v for x in range(w) for v in ((x * 8 + y * 3) % 256, (y * 8) % 256, (x * y) % 256))
               for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open("a.png", "wb").write(png)
EOF
then
    fail "could not write a.png with /usr/bin/python3"
    report
fi

# 1. No --model, from a folder with no models/: the installed ones.
out=$("$bin" generate --png a.png --out o 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -s o/results.csv ] && [ -s o/a_e.png ] && [ -s o/a_jnd.png ]; then pass
else fail "installed dmvjnd generate --png a.png --out o (exit $rc)" "$out"; fi
out=$("$bin" classify --png a.png 2>&1); rc=$?
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q "alexnet=.*vgg11bn=.*resnet20=.*densenet40bc="; then pass
else fail "installed dmvjnd classify --png a.png: the four shipped classifiers (exit $rc)" "$out"; fi
# jnd-alloc finds its calibration beside the installed model.
out=$("$bin" compress --png a.png --method jnd-alloc --quality 50 --out o6 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -s o6/a.jpg ]; then pass
else fail "installed dmvjnd compress --png a.png --method jnd-alloc: the calibration beside the model (exit $rc)" "$out"; fi
# The same program copied elsewhere finds them only through the folder compiled in.
mkdir -p "$tmp/elsewhere"
cp "$bin" "$tmp/elsewhere/dmvjnd"
out=$("$tmp/elsewhere/dmvjnd" generate --png a.png --out o2 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -s o2/results.csv ]; then pass
else fail "a copy of the installed program outside PREFIX (the compiled-in folder)" "$out"; fi

# 2. A moved copy of the model folder, named relative to the current folder.
cp -r "$models" "$tmp/moved"
cd "$tmp" || exit 1
out=$("$bin" generate --model moved/jnd_v1.0.safetensors --png work/a.png --out o3 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -s o3/results.csv ]; then pass
else fail "generate --model moved/jnd_v1.0.safetensors (exit $rc)" "$out"; fi

# 3. A classifier replaced by another file (other bytes): refused by name,
#    although the installed folder still holds the right one.
cp moved/vgg11bn_v1.0.safetensors moved/alexnet_v1.0.safetensors
out=$("$bin" generate --model moved/jnd_v1.0.safetensors --png work/a.png --out o4 2>&1); rc=$?
if [ $rc -eq 3 ] && printf '%s\n' "$out" | grep -q "moved/alexnet_v1.0.safetensors: does not match the classifier the JND model was trained with"; then pass
else fail "a replaced classifier file must be refused by name (exit $rc, want 3)" "$out"; fi

# 4. A missing one: refused by name.
rm moved/alexnet_v1.0.safetensors
out=$("$bin" generate --model moved/jnd_v1.0.safetensors --png work/a.png --out o5 2>&1); rc=$?
if [ $rc -eq 3 ] && printf '%s\n' "$out" | grep -q "moved/alexnet_v1.0.safetensors: cannot open"; then pass
else fail "a missing classifier file must be refused by name (exit $rc, want 3)" "$out"; fi

# 5. $DMVJND_MODELS comes first: an empty folder there does not hide the
#    installed models, a folder with a broken JND model is used (and refused).
mkdir -p "$tmp/env"
printf 'not a model' > "$tmp/env/jnd_v1.0.safetensors"
out=$(DMVJND_MODELS="$tmp/env" "$bin" generate --png work/a.png --out o6 2>&1); rc=$?
if [ $rc -eq 3 ] && printf '%s\n' "$out" | grep -q "$tmp/env/jnd_v1.0.safetensors"; then pass
else fail "DMVJND_MODELS is searched first (exit $rc, want 3)" "$out"; fi

# 6. Uninstall removes the models and the program.
cd "$repo" || exit 1
if ! out=$(make -s uninstall PREFIX="$tmp/p" BUILD="$tmp/build" "$flags" SAN="${SAN:-}" 2>&1); then fail "make uninstall" "$out"
elif [ -e "$tmp/p/share/dmvjnd" ] || [ -e "$bin" ]; then fail "make uninstall left $(ls -R "$tmp/p" | head -5)"
else pass; fi

# 7. DESTDIR stages under another root; the folder compiled in is PREFIX's.
if ! out=$(make -s install DESTDIR="$tmp/stage" PREFIX=/opt/dmvjnd-test BUILD="$tmp/build" "$flags" SAN="${SAN:-}" 2>&1); then
    fail "make install DESTDIR=... PREFIX=/opt/dmvjnd-test" "$out"
elif [ ! -f "$tmp/stage/opt/dmvjnd-test/share/dmvjnd/models/jnd_v1.0.safetensors" ]; then
    fail "DESTDIR install: no $tmp/stage/opt/dmvjnd-test/share/dmvjnd/models/jnd_v1.0.safetensors"
elif ! grep -q "/opt/dmvjnd-test/share/dmvjnd/models" "$tmp/stage/opt/dmvjnd-test/bin/dmvjnd" ||
     grep -q "$tmp/stage" "$tmp/stage/opt/dmvjnd-test/bin/dmvjnd"; then
    fail "DESTDIR install: the program must hold /opt/dmvjnd-test/share/dmvjnd/models, not the staging folder"
else pass; fi

report
