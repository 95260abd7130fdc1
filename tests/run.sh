#!/bin/sh
# Runs each test program given as an argument and sums their
# "name: N passed, N failed, N skipped" lines (tests/check.h; the skipped
# part may be absent, or followed by "(K not for this CPU or build)") into
# one closing line.
#
# DMVJND_REQUIRE_ALL=1 (set by .ci/run once the data is there) turns every
# skip into a failure except those a test marks as not for this CPU or build
# (SKIP_PLATFORM in tests/check.h): there everything else must run.
passed=0; failed=0; skipped=0; platform=0; broken=""; skippers=""
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" |
        grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped( \([0-9]+ not for this CPU or build\))?)?$' |
        tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out"
        echo "$t: crashed or printed no summary (exit $rc)"
        failed=$((failed + 1)); broken="$broken $t"; continue
    fi
    p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
    s=0; k=0
    case "$line" in *skipped*) s=$(echo "$line" | sed 's/.* \([0-9]*\) skipped.*/\1/') ;; esac
    case "$line" in *"not for this"*) k=$(echo "$line" | sed 's/.*(\([0-9]*\) not for this.*/\1/') ;; esac
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then printf '%s\n' "$out"; broken="$broken $t"; fi
    if [ "$s" -gt "$k" ]; then
        printf '%s\n' "$out" | grep '^SKIP ' | grep -v 'not for this CPU or build'
        skippers="$skippers $t"
    fi
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    echo "$line"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s)); platform=$((platform + k))
done
[ -n "$broken" ] && echo "failing:$broken"
[ -n "$skippers" ] && echo "skipping:$skippers"
if [ "$platform" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped ($platform not for this CPU or build)"
else
    echo "$passed passed, $failed failed, $skipped skipped"
fi
if [ "${DMVJND_REQUIRE_ALL:-0}" = 1 ] && [ "$skipped" -gt "$platform" ]; then
    echo "DMVJND_REQUIRE_ALL=1: $((skipped - platform)) test(s) skipped that must run here:$skippers"
    exit 1
fi
[ "$failed" -eq 0 ]
