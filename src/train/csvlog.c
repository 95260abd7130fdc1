/* Per-epoch CSV logs: see dmvjnd/train_job.h. */
#include "dmvjnd/train_job.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"

#define CSV_MAX_BYTES ((size_t)64 << 20) /* a log this large is not one of ours */

int dj_csvlog_append(dj_csvlog *c, const char *s) {
    size_t n = strlen(s);
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4096;
        while (cap < c->len + n + 1) cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t) return dj_error(DJ_ENOMEM, "CSV log: out of memory");
        c->text = t;
        c->cap = cap;
    }
    memcpy(c->text + c->len, s, n + 1);
    c->len += n;
    return DJ_OK;
}

int dj_csvlog_start(dj_csvlog *c, const char *header, const char *path, int keep_epochs) {
    int rc = dj_csvlog_append(c, header);
    if (!rc) rc = dj_csvlog_append(c, "\n");
    if (rc || !path || keep_epochs < 1 || access(path, F_OK) != 0) return rc; /* fresh log */
    void *data;
    size_t size;
    if ((rc = dj_read_file(path, CSV_MAX_BYTES, &data, &size))) return rc;
    char *text = data, *line = text;
    int lineno = 0;
    while (!rc && line < text + size) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        char *next = end ? end + 1 : text + size;
        if (!end) end = text + size;
        if (end > line && end[-1] == '\r') end--;
        *end = '\0';
        lineno++;
        if (lineno == 1) {
            if (strcmp(line, header))
                rc = dj_error(DJ_EFORMAT,
                              "%s: the first line is not this run's CSV header (another run's or version's log?); "
                              "move the file away or log to another one",
                              path);
        } else if (*line) {
            char *e;
            errno = 0;
            long ep = strtol(line, &e, 10);
            if (e == line || *e != ',' || errno || ep < 1)
                rc = dj_error(DJ_EFORMAT, "%s: line %d does not start with an epoch number", path, lineno);
            else if (ep <= keep_epochs && !(rc = dj_csvlog_append(c, line)))
                rc = dj_csvlog_append(c, "\n");
        }
        line = next;
    }
    dj_free(data);
    return rc;
}

int dj_csvlog_write_row(dj_csvlog *c, const char *row, const char *path) {
    int rc = dj_csvlog_append(c, row);
    if (!rc) rc = dj_csvlog_append(c, "\n");
    if (!rc && path) rc = dj_write_file_atomic(path, c->text, c->len);
    return rc;
}

void dj_csvlog_free(dj_csvlog *c) {
    free(c->text);
    memset(c, 0, sizeof *c);
}
