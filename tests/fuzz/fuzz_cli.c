/*
 * libFuzzer harness for the command line: argument parsing and validation of
 * every `dmvjnd` command, run in-process through the CLI's own main
 * (cli/dmvjnd.c compiled with -Dmain=dmvjnd_main; see tests/fuzz/run.sh).
 *
 * Input: the arguments after "dmvjnd", separated by NUL bytes (at most 64;
 * tests/fuzz/corpus/cli holds examples, tests/fuzz/cli.dict the option
 * names).
 *
 * No input may start real work or write outside a scratch folder:
 *   - the harness works in its own folder /tmp/fuzz-cli.XXXXXX (chdir'ed
 *     into at start, emptied after every input, removed at exit), and
 *     rejects (skips) any input with an argument that contains '/' or starts
 *     with "..": every path a command sees is then a name in that folder;
 *   - $DMVJND_DATA names a folder that does not exist, and dj_cifar10_load
 *     and dj_bench_run are replaced (ld --wrap) by stubs that fail at once,
 *     so train-classifier, train, classify, cam and bench stop after
 *     validating their options and checking their files, however the options
 *     ask for hours of work. (No model file can exist in the folder, so
 *     classify and cam fail loading the --model files.) A command added later
 *     that gets past these would show up as a 20 s timeout (run.sh).
 * Because the harness chdir's, give libFuzzer absolute paths for the corpus
 * and -artifact_prefix (run.sh does).
 *
 * train-classifier parses --schedule only after loading the data, which
 * never happens here, so the harness also gives every --schedule value to
 * dj_schedule_parse (with 30 epochs of 391 steps) and dj_schedule_check, and
 * requires the rates of an accepted schedule to be finite and >= 0.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - the exit code is 0 (only with --help/-h/help/--version somewhere in
 *     the arguments), 2 (usage) or 3 (unusable input or output file);
 *   - a non-zero exit code comes with a message on stderr naming the
 *     command ("dmvjnd ...");
 *   - nothing is left in the scratch folder but the folders `cam --out`
 *     creates.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sanitizer/common_interface_defs.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmvjnd/bench.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/optim.h"

#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            dprintf(keep_stderr, "fuzz_cli: property failed: %s (exit code %d)\n", #cond, rc);                       \
            __builtin_trap();                                                                                          \
        }                                                                                                              \
    } while (0)

int dmvjnd_main(int argc, char **argv);

/* ---- stubs for what would do real work (linked with -Wl,--wrap=...) */

int __wrap_dj_cifar10_load(dj_cifar10 *ds, const char *dir, const char *split, const dj_cifar10_opts *opts) {
    (void)opts;
    if (ds) memset(ds, 0, sizeof *ds);
    return dj_error(DJ_EIO, "%s/%s: cannot open: no data set in the fuzz harness", dir ? dir : "(default)",
                    split ? split : "(null)");
}

int __wrap_dj_bench_run(const dj_bench_config *cfg, dj_bench_result *res) {
    (void)cfg;
    if (res) memset(res, 0, sizeof *res);
    return dj_error(DJ_EIO, "bench: not run in the fuzz harness");
}

/* ---- scratch folder */

static char dir[64];
static int keep_stderr = 2, capture_fd = -1;

static void empty_dir(const char *path, int depth) {
    DIR *d = opendir(path);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (depth < 4) empty_dir(p, depth + 1);
            rmdir(p);
        } else {
            unlink(p);
        }
    }
    if (d) closedir(d);
}

static void cleanup(void) {
    if (!dir[0]) return;
    empty_dir(dir, 0);
    rmdir(dir);
}

static void init(void) {
    snprintf(dir, sizeof dir, "/tmp/fuzz-cli.XXXXXX");
    if (!mkdtemp(dir) || chdir(dir) != 0) abort();
    atexit(cleanup);
    setenv("DMVJND_DATA", "no-cifar-data-here", 1);
    /* Sanitizer reports keep going to the real stderr while the commands'
     * stderr is captured. */
    keep_stderr = dup(2);
    if (keep_stderr < 0) abort();
    __sanitizer_set_report_fd((void *)(intptr_t)keep_stderr);
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, 1) < 0) abort();
    close(null);
    char cap[128];
    snprintf(cap, sizeof cap, "/tmp/fuzz-cli-stderr.XXXXXX");
    capture_fd = mkstemp(cap);
    if (capture_fd < 0) abort();
    unlink(cap);
}

static int is_help(const char *a) {
    return !strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help") || !strcmp(a, "--version");
}

enum { MAX_ARGS = 64 };

static void check_schedule(const char *spec) {
    int rc = 0;
    const int64_t per_epoch = 391, total = 30 * per_epoch;
    dj_schedule s;
    memset(&s, 0x77, sizeof s);
    if (dj_schedule_parse(&s, spec, 0.1, total, per_epoch) != 0) {
        REQUIRE(dj_last_error()[0] != '\0');
        return;
    }
    if (dj_schedule_check(&s) != 0) return;
    for (int64_t k = -1; k <= total + 1; k += 1 + total / 97) {
        double lr = dj_schedule_lr(&s, k);
        REQUIRE(isfinite(lr) && lr >= 0);
    }
    REQUIRE(isfinite(dj_schedule_lr(&s, total - 1)) && isfinite(dj_schedule_lr(&s, INT64_MAX)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int rc = -1;
    if (!dir[0]) init();
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "dmvjnd";
    int help = 0;
    for (size_t off = 0; off <= size && argc <= MAX_ARGS;) {
        char *a = buf + off;
        size_t len = strlen(a);
        /* The sandbox: no argument may name anything outside the folder. */
        if (strchr(a, '/') || !strncmp(a, "..", 2)) {
            free(buf);
            return 0;
        }
        argv[argc++] = a;
        help |= is_help(a);
        off += len + 1;
    }
    if (argc > MAX_ARGS) {
        free(buf);
        return 0;
    }
    argv[argc] = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--schedule=", 11)) check_schedule(argv[i] + 11);
        else if (!strcmp(argv[i], "--schedule") && i + 1 < argc) check_schedule(argv[i + 1]);
    }

    /* Run with stderr captured. */
    fflush(stderr);
    if (ftruncate(capture_fd, 0) != 0 || lseek(capture_fd, 0, SEEK_SET) != 0 || dup2(capture_fd, 2) < 0) abort();
    rc = dmvjnd_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(keep_stderr, 2);
    char msg[256];
    ssize_t got = pread(capture_fd, msg, sizeof msg - 1, 0);
    msg[got > 0 ? got : 0] = '\0';

    REQUIRE(rc == 0 || rc == 2 || rc == 3);
    if (rc == 0) REQUIRE(help);
    if (rc != 0) REQUIRE(got > 0 && strstr(msg, "dmvjnd") != NULL);

    /* Only empty folders (cam --out) may have been made; remove them. */
    DIR *d = opendir(".");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        REQUIRE(lstat(e->d_name, &st) == 0 && S_ISDIR(st.st_mode));
    }
    if (d) closedir(d);
    empty_dir(".", 0);
    dj_set_num_threads(1);
    free(buf);
    return 0;
}
