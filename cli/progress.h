/* A progress line for long jobs (the CLI's training progress).
 *
 * On a terminal the line is rewritten in place ("\r", at most every
 * tty_interval seconds, 0.2 by default) and cleared before anything else is
 * printed; elsewhere (a log file, CI) one full line is printed at most every
 * `interval` seconds, so logs stay readable. Part of the CLI: the library
 * never prints; the CLI owns the FILE. */
#ifndef DMVJND_CLI_PROGRESS_H
#define DMVJND_CLI_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

typedef struct dj_progress {
    FILE *f;
    int tty;             /* 1: rewrite one line with \r                    */
    double interval;     /* seconds between lines when not a terminal       */
    double tty_interval; /* seconds between redraws on a terminal           */
    double last;         /* time of the last print (-1: never)              */
    size_t shown;        /* characters of the line now on the terminal      */
} dj_progress;

/* Set up for f (usually stderr); tty is detected with isatty(fileno(f)).
 * interval <= 0 means 30 seconds. */
/* Monotonic wall-clock time in seconds (what the progress line's rates use). */
double dj_progress_now(void);

void dj_progress_init(dj_progress *p, FILE *f, double interval);

/* Show a new state of the line (printf format, no newline). Printed only
 * when the interval has passed since the last print, or when force is 1. */
void dj_progress_update(dj_progress *p, int force, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Erase the line on a terminal (call before printing anything else to the
 * same terminal); no-op elsewhere. */
void dj_progress_clear(dj_progress *p);

/* Seconds as a short duration: "42s", "3m05s", "2h07m", "3d04h"; "?" when not
 * finite or negative. */
void dj_format_duration(double seconds, char *buf, size_t size);

#endif
