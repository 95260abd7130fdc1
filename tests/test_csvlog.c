/* The per-epoch CSV log shared by classifier and JND training
 * (src/train/csvlog.c): a fresh log, a resumed one that keeps exactly the
 * checkpoint's epochs, and the logs it refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"
#include "dmvjnd/train_job.h"

static char dir[256], path[300];

static void put(const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *get(void) {
    void *data;
    size_t size;
    if (dj_read_file(path, 1 << 20, &data, &size)) return NULL;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    dj_free(data);
    return s;
}

static void test_fresh_and_rows(void) {
    unlink(path);
    dj_csvlog c = {0};
    CHECK_OK(dj_csvlog_start(&c, "epoch,loss", path, 0));
    CHECK(!strcmp(c.text, "epoch,loss\n"));
    CHECK_OK(dj_csvlog_write_row(&c, "1,0.5", path));
    CHECK_OK(dj_csvlog_write_row(&c, "2,0.25", path));
    char *s = get();
    CHECK(s && !strcmp(s, "epoch,loss\n1,0.5\n2,0.25\n"));
    free(s);
    dj_csvlog_free(&c);
    CHECK(c.text == NULL && c.len == 0);
    /* no path: kept in memory only (JND plots read it) */
    CHECK_OK(dj_csvlog_start(&c, "h", NULL, 3));
    CHECK_OK(dj_csvlog_write_row(&c, "1", NULL));
    CHECK(!strcmp(c.text, "h\n1\n"));
    dj_csvlog_free(&c);
    /* a long log grows its buffer */
    CHECK_OK(dj_csvlog_start(&c, "h", NULL, 0));
    char row[64];
    for (int i = 1; i <= 2000; i++) {
        snprintf(row, sizeof row, "%d,%d", i, i * i);
        CHECK_OK(dj_csvlog_append(&c, row));
    }
    CHECK(c.len > 4096 && strstr(c.text, "2000,4000000") != NULL);
    dj_csvlog_free(&c);
}

/* A resumed run keeps the rows of the epochs its checkpoint holds and drops
 * later ones (written after the checkpoint it resumes from). CRLF is read. */
static void test_resume(void) {
    put("epoch,loss\r\n1,0.5\r\n2,0.4\r\n3,0.3\r\n\r\n");
    dj_csvlog c = {0};
    CHECK_OK(dj_csvlog_start(&c, "epoch,loss", path, 2));
    CHECK(!strcmp(c.text, "epoch,loss\n1,0.5\n2,0.4\n"));
    dj_csvlog_free(&c);
    unlink(path); /* resuming without a log starts one */
    CHECK_OK(dj_csvlog_start(&c, "epoch,loss", path, 5));
    CHECK(!strcmp(c.text, "epoch,loss\n"));
    dj_csvlog_free(&c);
}

static void test_refused(void) {
    dj_csvlog c = {0};
    put("epoch,acc\n1,0.5\n");
    CHECK_FAILS(dj_csvlog_start(&c, "epoch,loss", path, 1), DJ_EFORMAT, "not this run's CSV header");
    CHECK(strstr(dj_last_error(), path) != NULL);
    dj_csvlog_free(&c);
    put("epoch,loss\n1,0.5\nx,0.4\n");
    CHECK_FAILS(dj_csvlog_start(&c, "epoch,loss", path, 1), DJ_EFORMAT, "line 3 does not start with an epoch");
    dj_csvlog_free(&c);
    put("epoch,loss\n0,0.5\n");
    CHECK_FAILS(dj_csvlog_start(&c, "epoch,loss", path, 1), DJ_EFORMAT, "line 2");
    dj_csvlog_free(&c);
    /* the refused file is left as it was */
    char *s = get();
    CHECK(s && !strcmp(s, "epoch,loss\n0,0.5\n"));
    free(s);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/dmvjnd_csvlog_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/log.csv", dir);
    RUN(test_fresh_and_rows);
    RUN(test_resume);
    RUN(test_refused);
    unlink(path);
    rmdir(dir);
    return check_report("test_csvlog");
}
