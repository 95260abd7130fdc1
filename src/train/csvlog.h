/* The per-epoch CSV log of a training job (classifier and JND training share
 * it): the whole text is kept in memory and rewritten atomically after every
 * epoch, so a killed run leaves a complete file; a resumed run starts from
 * the rows of the epochs its checkpoint holds. */
#ifndef DMVJND_TRAIN_CSVLOG_H
#define DMVJND_TRAIN_CSVLOG_H

#include <stddef.h>

typedef struct csvlog {
    char *text;
    size_t len, cap;
} csvlog;

/* Appends s (0 or an error code; on error the log is unchanged). */
int csvlog_append(csvlog *c, const char *s);

/* Starts the log with header and a newline, then, if `path` exists, takes
 * its rows of epochs 1..keep_epochs (a resumed run). The file's first line
 * must be `header`: a log of another run or version is an error that names
 * the file, never overwritten. */
int csvlog_start(csvlog *c, const char *header, const char *path, int keep_epochs);

/* Appends one row (s, without its newline) and rewrites `path` atomically. */
int csvlog_write_row(csvlog *c, const char *row, const char *path);

void csvlog_free(csvlog *c);

#endif
