#!/usr/bin/env bash
# Builds every libFuzzer harness in tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) and runs each, one after the other,
# on its seed corpus tests/fuzz/corpus/<name>/ for FUZZ_SECONDS seconds
# (default 60). Fails on any finding (crash, leak, UB, timeout, property
# failure); prints the number of executions of each harness.
#
#   tests/fuzz/run.sh                      every harness, 60 s each
#   FUZZ_SECONDS=10 tests/fuzz/run.sh png  some harnesses, 10 s each
#   FUZZ_RUNS=1000000 tests/fuzz/run.sh    a fixed number of executions instead
#
# Harnesses: safetensors json cifar10 png cli jpeg webp calibration. Needs clang
# and its runtime (Debian: clang, libclang-rt-14-dev), libpng, zlib, oneDNN
# (cli), libjpeg-turbo (jpeg, calibration), libwebp (webp, calibration).
# Binaries and objects go to $FUZZ_BUILD (default build-fuzz/); inputs the
# fuzzer finds interesting to build-fuzz/corpus/<name>/ (kept between runs,
# the seeds in tests/fuzz/corpus stay clean); a finding is saved as
# build-fuzz/artifacts/<name>-crash-<sha1> (reproduce: build-fuzz/fuzz_<name> FILE).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-60}
RUNS=${FUZZ_RUNS:-}
OUT=${FUZZ_BUILD:-$ROOT/build-fuzz}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
CC=${FUZZ_CC:-clang}
ALL="safetensors json cifar10 png cli jpeg webp calibration"
NAMES=${*:-$ALL}

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)"; exit 2; }

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# DJ_MODEL_DIR: the installed-models folder the Makefile generates into
# build/gen/model_dir.h; the harnesses are built without the Makefile.
BASE="-std=c11 -g -O1 -Iinclude -Isrc -D_GNU_SOURCE -w -DDJ_MODEL_DIR=\"/nonexistent/dmvjnd/models\""
COV_FULL="-fsanitize=fuzzer-no-link"
# cifar10 and png: comparison tracing in the pixel loops costs 4x the
# speed and buys nothing (the formats' decisions are a few constants).
COV_LITE="-fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp"
# Layers, kernels, the oneDNN backend, CAM and JND losses, the benchmark:
# no fuzz input reaches them (see the cli harness).
COMPUTE='^src/(nn|backend)/|^src/jnd/(cam|losses)\.c$|^src/util/bench\.c$'
HDRS=$(ls include/dmvjnd/*.h src/*/*.h cli/*.h 2>/dev/null)
newest_hdr=$(ls -t $HDRS | head -n 1)

# obj VARIANT FLAGS SRC [EXTRA]: compiles SRC into $OUT/obj-VARIANT/ when it
# or a header is newer than the object; prints the object path.
obj() {
    local variant=$1 flags=$2 src=$3 extra=${4:-}
    local o=$OUT/obj-$variant/${src%.c}.o
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ "$newest_hdr" -nt "$o" ]; then
        mkdir -p "$(dirname "$o")"
        $CC $BASE $SAN $flags $extra -c "$src" -o "$o" >&2 || { rm -f "$o"; return 1; }
    fi
    echo "$o"
}

build() {
    local name=$1 variant flags srcs=() link=""
    case $name in
    json) variant=full; srcs=(src/io/json.c src/core/error.c) ;;
    safetensors) variant=full; srcs=(src/io/safetensors.c src/io/json.c src/util/fileio.c src/core/error.c src/core/tensor.c) ;;
    cifar10) variant=lite; srcs=(src/io/cifar10.c src/core/error.c src/core/tensor.c src/util/rng.c) ;;
    png) variant=lite; srcs=(src/io/png.c src/util/fileio.c src/core/error.c src/core/tensor.c); link="-lpng -lz" ;;
    cli) variant=full; srcs=($(ls src/*/*.c cli/*.c | grep -v -E "$COMPUTE|^cli/dmvjnd.c$"))
         link="-Wl,--wrap=dj_cifar10_load -Wl,--wrap=dj_bench_run -ldnnl -lpng -ljpeg -lwebp -lz -lgomp" ;;
    jpeg) variant=lite; srcs=(src/codec/jpeg.c src/codec/suppress.c src/core/error.c); link="-ljpeg -lpthread" ;;
    webp) variant=lite; srcs=(src/codec/webp.c src/codec/jpeg.c src/core/error.c); link="-lwebp -ljpeg" ;;
    # jnd-alloc's calibration file; method.c (codec names) brings the codecs
    # and budgets along, the harness stubs the two generator calls.
    calibration) variant=full; srcs=(src/compress/alloc.c src/compress/method.c src/compress/budget.c
         src/compress/hvs_jnd.c src/codec/jpeg.c src/codec/suppress.c src/codec/webp.c src/io/json.c
         src/util/fileio.c src/core/error.c src/core/tensor.c); link="-lwebp -ljpeg -lpthread" ;;
    *) echo "fuzz: unknown harness '$name' (have: $ALL)"; return 2 ;;
    esac
    flags=$COV_FULL; [ "$variant" = lite ] && flags=$COV_LITE
    local objs=() s o
    for s in "${srcs[@]}"; do
        o=$(obj "$variant" "$flags" "$s") || return 1
        objs+=("$o")
    done
    if [ "$name" = cli ]; then
        # The CLI's main, renamed so that the harness can call it.
        o=$(obj "$variant" "$flags" cli/dmvjnd.c -Dmain=dmvjnd_main) || return 1
        objs+=("$o")
        # The compute code only has to link: no input reaches it (no data, no
        # model file). Instrumenting it would cost minutes of compile time.
        for s in $(ls src/*/*.c | grep -E "$COMPUTE"); do
            o=$(obj plain "-O0 -g0" "$s" -fno-sanitize=all) || return 1
            objs+=("$o")
        done
    fi
    # The harness itself: sanitizers, no coverage (its checks are not the target).
    o=$(obj harness "" "tests/fuzz/fuzz_$name.c") || return 1
    objs+=("$o")
    $CC $SAN -fsanitize=fuzzer -o "$OUT/fuzz_$name" "${objs[@]}" $link -lm
}

# The CLI dictionary: the fixed values of tests/fuzz/cli.dict plus every
# command and option the sources define now.
cli_dict() {
    {
        cat tests/fuzz/cli.dict
        sed -n 's/.*{"\([a-z][a-z0-9-]*\)", OPT_.*/"--\1"/p' cli/*.c
        sed -n 's/^ *{"\([a-z][a-z0-9-]*\)", cmd_.*/"\1"/p' cli/dmvjnd.c
    } | sort -u >"$OUT/cli.dict"
    echo "$OUT/cli.dict"
}

mkdir -p "$OUT/artifacts"
failed=""
total_start=$(date +%s)
for name in $NAMES; do
    t0=$(date +%s)
    if ! build "$name"; then
        echo "fuzz_$name: BUILD FAILED"
        failed="$failed $name"
        continue
    fi
    t1=$(date +%s)
    work=$OUT/corpus/$name
    mkdir -p "$work"
    opts=(-timeout=20 -rss_limit_mb=2560 -print_final_stats=1 "-artifact_prefix=$OUT/artifacts/$name-")
    if [ -n "$RUNS" ]; then opts+=("-runs=$RUNS"); else opts+=("-max_total_time=$SECONDS_EACH"); fi
    case $name in
    safetensors) opts+=("-dict=$ROOT/tests/fuzz/safetensors.dict") ;;
    cli) opts+=("-dict=$(cli_dict)" -max_len=512) ;;
    esac
    log=$OUT/fuzz_$name.log
    set +e
    "$OUT/fuzz_$name" "${opts[@]}" "$work" "$ROOT/tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    set -e
    t2=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n "s/^#\([0-9]*\).*/\1/p" "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz_$name: FINDING (exit $rc) after ${execs:-?} executions; log $log, input in $OUT/artifacts/"
        failed="$failed $name"
    else
        echo "fuzz_$name: ${execs:-?} executions in $((t2 - t1)) s (${speed:-?}/s), no finding (build $((t1 - t0)) s)"
    fi
done
echo "fuzz: $(( $(date +%s) - total_start )) s in all"
if [ -n "$failed" ]; then
    echo "fuzz: failing:$failed"
    exit 1
fi
