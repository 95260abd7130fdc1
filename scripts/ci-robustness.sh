#!/usr/bin/env bash
# The robustness half of CI (.ci/run calls it after `make check`):
#   1. `make asan`: every test again, built with AddressSanitizer + UBSan
#      (build-asan/; the CLI tests run build-asan/dmvjnd);
#   2. tests/fuzz/run.sh: every libFuzzer harness for FUZZ_SECONDS seconds
#      each (default 60), ASan + UBSan, failing on any finding;
#   3. valgrind on CLI runs (build/dmvjnd, or on a CPU with AVX-512, which
#      valgrind does not decode, a build without -march in build-valgrind/):
#      `dmvjnd classify` on PNG files with a model made by a short
#      train-classifier run, and a one-step train-classifier run; a leak
#      reported as "definitely lost", or any memory error, fails.
# Prints the time of each step. Needs clang, libclang-rt-14-dev and valgrind
# (scripts/install-deps.sh) and CIFAR-10 (scripts/get-cifar10.sh).
#
#   scripts/ci-robustness.sh                 all three
#   ROBUSTNESS_STEPS="fuzz valgrind" FUZZ_SECONDS=10 scripts/ci-robustness.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${ROBUSTNESS_STEPS:-asan fuzz valgrind}
export FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-2}
summary=""

step() { # step NAME COMMAND...: runs it, records its time
    local name=$1 t0 rc
    shift
    echo "== robustness: $name"
    t0=$(date +%s)
    set +e
    "$@"
    rc=$?
    set -e
    local t=$(($(date +%s) - t0))
    summary="$summary$(printf '  %-10s %5d s  %s' "$name" "$t" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")
"
    if [ $rc -ne 0 ]; then
        printf 'robustness: step times\n%s' "$summary"
        echo "robustness: $name failed"
        exit $rc
    fi
}

asan() { make -j"$JOBS" asan; }

fuzz() { bash tests/fuzz/run.sh; }

valgrind_runs() {
    command -v valgrind >/dev/null || { echo "valgrind not installed (scripts/install-deps.sh)"; return 2; }
    make -j"$JOBS" cli >/dev/null || return 1
    # build/ is compiled with -march=native: without AVX-512 on this CPU it
    # holds nothing valgrind cannot decode; with it, build one without -march.
    local bin=build/dmvjnd
    if grep -q avx512 /proc/cpuinfo; then
        make -j"$JOBS" BUILD=build-valgrind OPT=-O1 ARCH= cli >/dev/null || return 1
        bin=build-valgrind/dmvjnd
    fi
    local t
    t=$(mktemp -d /tmp/dmvjnd-valgrind.XXXXXX)
    # A model and a few 32x32 PNGs (CAM heat maps: grey; a seed: RGB), natively.
    build/dmvjnd train-classifier --arch resnet20 --train-limit 64 --epochs 1 --batch 32 --eval-limit 0 \
        --final-eval-limit 0 --threads 1 --quiet --out "$t/model.safetensors" >/dev/null || return 1
    build/dmvjnd cam --model "$t/model.safetensors" --split test --limit 2 --out "$t/maps" --quiet >/dev/null ||
        return 1
    local vg=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
              --show-leak-kinds=definite --smc-check=all --num-callers=30)
    echo "valgrind: dmvjnd classify (PNG files)"
    "${vg[@]}" --log-file="$t/classify.vg" "$bin" classify --model "$t/model.safetensors" --threads 1 \
        --png tests/fuzz/corpus/png/rgb8_32x32.png "$t/maps/0_merged.png" "$t/maps/1_resnet20.png" --json >/dev/null
    local rc1=$?
    echo "valgrind: dmvjnd train-classifier (one step, checkpoint, weights)"
    "${vg[@]}" --log-file="$t/train.vg" "$bin" train-classifier --arch resnet20 --train-limit 8 \
        --epochs 1 --batch 8 --eval-limit 0 --final-eval-limit 0 --threads 1 --quiet \
        --out "$t/w.safetensors" --checkpoint "$t/c.ckpt" --log "$t/log.csv" >/dev/null
    local rc2=$?
    # The shipped JND model and its four classifiers, on a 32x32 and an odd
    # 5x3 image (padded to the stride and cropped back).
    echo "valgrind: dmvjnd generate (shipped JND model, PNG files of two sizes)"
    "${vg[@]}" --log-file="$t/generate.vg" "$bin" generate --model models/jnd_v1.0.safetensors --threads 1 \
        --png tests/fuzz/corpus/png/rgb8_32x32.png tests/fuzz/corpus/png/rgb8_filters.png --out "$t/gen" >/dev/null
    local rc3=$?
    for f in classify train generate; do
        echo "-- $f: $(grep -E 'ERROR SUMMARY|definitely lost' "$t/$f.vg" | sed 's/^==[0-9]*== *//' | tr '\n' ';')"
    done
    if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ] || [ $rc3 -ne 0 ]; then
        cat "$t"/*.vg
        echo "valgrind: memory errors or definite leaks (logs above)"
        rm -rf "$t"
        return 1
    fi
    rm -rf "$t"
}

for s in $STEPS; do
    case $s in
    asan) step asan asan ;;
    fuzz) step fuzz fuzz ;;
    valgrind) step valgrind valgrind_runs ;;
    *) echo "robustness: unknown step '$s' (asan fuzz valgrind)"; exit 2 ;;
    esac
done
printf 'robustness: step times\n%s' "$summary"
echo "robustness: all passed"
