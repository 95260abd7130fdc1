/* kill -9 during training, then --resume: `dmvjnd train-classifier` on a
 * tiny recipe is killed in the middle of epoch 2 and again right after the
 * checkpoint of epoch 2 appears; after each kill the checkpoint must load
 * (never torn) and hold the last finished epoch, and no weights file may
 * exist; rerunning the same command with --resume finishes the run, and the
 * final weights equal those of an uninterrupted run of the same recipe bit
 * for bit, tensor by tensor (the metadata differs: wall times). The CSV log
 * of the killed run ends up with one row per epoch.
 *
 * Runs $BUILD/dmvjnd (default build/dmvjnd) from the repository root; needs
 * CIFAR-10 (skipped without it). About 30 s on 2 idle cores. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/checkpoint.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/safetensors.h"
#include "dmvjnd/train.h"

extern char **environ;

static char tmpdir[] = "/tmp/dj_test_kill_resume.XXXXXX";
static char bin[4096];

static const char *tp(const char *name) {
    static char buf[8][4200];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Starts `dmvjnd train-classifier <recipe> --out OUT --checkpoint CKPT
 * --log LOG --resume`, stdout/stderr to files named after `tag`. */
static pid_t start(const char *tag, const char *out, const char *ckpt, const char *log) {
    const char *data = dj_cifar10_default_dir();
    char *argv[] = {bin, "train-classifier", "--arch", "resnet20", "--train-limit", "256", "--epochs", "3",
                    "--batch", "64", "--eval-limit", "64", "--final-eval-limit", "64", "--seed", "3", "--threads",
                    "2", "--quiet", "--data", (char *)data, "--out", (char *)out, "--checkpoint", (char *)ckpt,
                    "--log", (char *)log, "--resume", NULL};
    char o[64], e[64];
    snprintf(o, sizeof o, "%s.out", tag);
    snprintf(e, sizeof e, "%s.err", tag);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, tp(o), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, tp(e), O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(rc));
        return -1;
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void show(const char *tag) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "cat '%s/%s.out' '%s/%s.err' >&2", tmpdir, tag, tmpdir, tag);
    if (system(cmd) != 0) fprintf(stderr, "(no output of %s)\n", tag);
}

/* Epoch of the checkpoint (its "epoch" metadata), 0 if there is none yet,
 * -1 if the file exists but does not open as a valid, finite safetensors
 * file (a torn checkpoint). */
static int ckpt_epoch(const char *path) {
    if (access(path, F_OK) != 0) return 0;
    dj_st_file *f;
    if (dj_st_open(path, DJ_ST_CHECK_FINITE, &f)) {
        fprintf(stderr, "checkpoint %s does not open: %s\n", path, dj_last_error());
        return -1;
    }
    const char *e = dj_st_metadata(f, "epoch"), *fmt = dj_st_metadata(f, "format");
    int epoch = e && fmt && !strcmp(fmt, DJ_CHECKPOINT_FORMAT) ? atoi(e) : -1;
    dj_st_close(f);
    return epoch;
}

/* Polls until the checkpoint holds epoch >= want (returns it) or the
 * process ends (returns -2) or 600 s pass (-3). */
static int wait_epoch(pid_t pid, const char *ckpt, int want) {
    double t0 = now();
    while (now() - t0 < 600) {
        int e = ckpt_epoch(ckpt);
        if (e < 0 || e >= want) return e;
        if (waitpid(pid, NULL, WNOHANG) == pid) return -2;
        sleep_s(0.02);
    }
    return -3;
}

/* Every tensor of a equals the one of the same name in b, bit for bit
 * (and both hold the same names); their recipes agree. */
static int same_weights(const char *a, const char *b) {
    dj_st_file *fa = NULL, *fb = NULL;
    int ok = dj_st_open(a, 0, &fa) == 0 && dj_st_open(b, 0, &fb) == 0;
    if (!ok) fprintf(stderr, "cannot open the weights: %s\n", dj_last_error());
    if (ok && dj_st_count(fa) != dj_st_count(fb)) ok = 0;
    size_t differ = 0;
    for (size_t i = 0; ok && i < dj_st_count(fa); i++) {
        const dj_st_tensor *t = dj_st_at(fa, i), *u = dj_st_find(fb, t->name);
        if (!u || strcmp(t->dtype, u->dtype) || t->nbytes != u->nbytes) {
            fprintf(stderr, "tensor %s: missing or of another dtype/size in %s\n", t->name, b);
            ok = 0;
        } else if (memcmp(t->raw, u->raw, t->nbytes) != 0) {
            if (differ++ < 5) fprintf(stderr, "tensor %s differs\n", t->name);
        }
    }
    if (differ) fprintf(stderr, "%zu tensors differ\n", differ);
    static const char *same_meta[] = {"arch",         "train.seed",    "train.epochs", "train.batch", "train.threads",
                                      "test_accuracy", "epoch", "step", "optim_step", "rng", NULL};
    for (int k = 0; ok && same_meta[k]; k++) {
        const char *x = dj_st_metadata(fa, same_meta[k]), *y = dj_st_metadata(fb, same_meta[k]);
        if (!x != !y || (x && strcmp(x, y))) {
            fprintf(stderr, "metadata %s: %s vs %s\n", same_meta[k], x ? x : "(none)", y ? y : "(none)");
            ok = 0;
        }
    }
    if (fa) dj_st_close(fa);
    if (fb) dj_st_close(fb);
    return ok && !differ;
}

static int data_available(void) {
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, 1, 0};
    if (dj_cifar10_load(&ds, NULL, "test", &o)) return 0;
    dj_cifar10_free(&ds);
    return 1;
}

static void test_kill_and_resume(void) {
    /* A: uninterrupted. */
    double t0 = now();
    pid_t a = start("a", tp("a.safetensors"), tp("a.ckpt"), tp("a.csv"));
    CHECK(a > 0);
    if (a <= 0) return;
    int rc = wait_exit(a);
    double run_s = now() - t0;
    CHECK(rc == 0);
    if (rc != 0) {
        show("a");
        return;
    }

    /* B: killed in the middle of epoch 2. */
    char w[4200], ck[4200], log[4200];
    snprintf(w, sizeof w, "%s", tp("b.safetensors"));
    snprintf(ck, sizeof ck, "%s", tp("b.ckpt"));
    snprintf(log, sizeof log, "%s", tp("b.csv"));
    t0 = now();
    pid_t b = start("b", w, ck, log);
    int e = wait_epoch(b, ck, 1);
    double epoch_s = now() - t0; /* start-up + epoch 1 */
    CHECK(e == 1);
    if (e != 1) {
        kill(b, SIGKILL);
        wait_exit(b);
        show("b");
        return;
    }
    /* Roughly 40% into epoch 2 (an epoch is at most run_s / 3). */
    double d = 0.4 * (run_s / 3 < epoch_s ? run_s / 3 : epoch_s);
    sleep_s(d);
    kill(b, SIGKILL);
    rc = wait_exit(b);
    CHECK(rc == 128 + SIGKILL); /* it was still running */
    e = ckpt_epoch(ck);
    fprintf(stderr, "test_kill_resume: killed %.2f s into epoch 2 (epoch 1 done after %.2f s); checkpoint at epoch %d\n",
            d, epoch_s, e);
    CHECK(e == 1 || e == 2); /* intact: epoch 1's, or epoch 2's if it was that quick */
    CHECK(access(w, F_OK) != 0); /* no weights file yet */

    /* Resume; kill again as soon as the checkpoint of epoch 2 is there. */
    pid_t b2 = start("b", w, ck, log);
    e = wait_epoch(b2, ck, 2);
    kill(b2, SIGKILL);
    rc = wait_exit(b2);
    CHECK(rc == 128 + SIGKILL);
    e = ckpt_epoch(ck);
    CHECK(e == 2 || e == 3);
    fprintf(stderr, "test_kill_resume: second kill at checkpoint epoch %d\n", e);

    /* Resume to the end. */
    pid_t b3 = start("b", w, ck, log);
    rc = wait_exit(b3);
    CHECK(rc == 0);
    if (rc != 0) {
        show("b");
        return;
    }
    CHECK(ckpt_epoch(ck) == 3);
    CHECK(same_weights(w, tp("a.safetensors")));
    CHECK(same_weights(ck, tp("a.ckpt"))); /* optimiser state and generator too */

    /* The log: the header and epochs 1, 2, 3 once each. */
    void *text;
    size_t n;
    CHECK_OK(dj_read_file(log, 1 << 20, &text, &n));
    if (text) {
        const char *s = text;
        CHECK(!strncmp(s, DJ_TRAIN_CSV_HEADER "\n1,", strlen(DJ_TRAIN_CSV_HEADER) + 3));
        CHECK(strstr(s, "\n2,") && strstr(s, "\n3,") && !strstr(s, "\n4,"));
        int lines = 0;
        for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
        CHECK(lines == 4);
        dj_free(text);
    }
    /* The resumed sessions said where they continued. */
    char out[8192] = "";
    FILE *f = fopen(tp("b.out"), "r");
    if (f) {
        out[fread(out, 1, sizeof out - 1, f)] = '\0';
        fclose(f);
    }
    CHECK(strstr(out, "resuming from") && strstr(out, "epochs ("));
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/dmvjnd", build && *build ? build : "build");
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "test_kill_resume: %s not found (run from the repository root after make)\n", bin);
        printf("test_kill_resume: 0 passed, 1 failed\n");
        return 1;
    }
    if (!data_available()) {
        fprintf(stderr, "test_kill_resume: CIFAR-10 not found (%s)\n", dj_last_error());
        check_skip("test_kill_and_resume", 0, "no CIFAR-10");
    } else {
        RUN(test_kill_and_resume);
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_kill_resume");
}
