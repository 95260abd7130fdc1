#!/bin/sh
# Runs each test program given as an argument and sums their
# "name: N passed, N failed" lines into one closing line.
passed=0; failed=0; broken=""
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out"
        echo "$t: crashed or printed no summary (exit $rc)"
        failed=$((failed + 1)); broken="$broken $t"; continue
    fi
    p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.* \([0-9]*\) failed$/\1/')
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then printf '%s\n' "$out"; broken="$broken $t"; fi
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    echo "$line"
    passed=$((passed + p)); failed=$((failed + f))
done
[ -n "$broken" ] && echo "failing:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
