/* Running the dmvjnd command from a test: its output and exit code. */
#ifndef DMVJND_TESTS_CLI_RUN_H
#define DMVJND_TESTS_CLI_RUN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* What the last cli_run printed (stdout and stderr together). */
static char cli_out[1 << 16];

/* Runs `bin args` with stdout + stderr into cli_out (through dir/out.txt);
 * returns the exit code, -1 when it did not exit normally. */
static int cli_run(const char *bin, const char *dir, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s > %s/out.txt 2>&1", bin, args, dir);
    int st = system(cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *f = fopen(path, "rb");
    cli_out[0] = '\0';
    if (f) {
        size_t n = fread(cli_out, 1, sizeof cli_out - 1, f);
        cli_out[n] = '\0';
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 1 when `bin args` exits with `code` and prints `needle`; else 0 and the
 * output on stderr. */
static int cli_exits(const char *bin, const char *dir, int code, const char *needle, const char *args) {
    int rc = cli_run(bin, dir, args);
    if (rc != code || !strstr(cli_out, needle)) {
        fprintf(stderr, "dmvjnd %s: exit %d, expected %d with \"%s\"; output:\n%s\n", args, rc, code, needle, cli_out);
        return 0;
    }
    return 1;
}

#endif
