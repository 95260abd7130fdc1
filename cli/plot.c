/* Figures of a training run through tools/plot_training.py: see plot.h. */
#include "plot.h"

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SCRIPT_NAME "plot_training.py"

/* The script's path into buf, or 0 when none is found. */
static int find_script(char *buf, size_t size) {
    const char *env = getenv("DMVJND_PLOT_SCRIPT");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        return access(buf, R_OK) == 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, size, "%s/../tools/" SCRIPT_NAME, exe);
            if (access(buf, R_OK) == 0) return 1;
        }
    }
    snprintf(buf, size, "tools/" SCRIPT_NAME);
    return access(buf, R_OK) == 0;
}

/* Runs `python` on the script; the script's exit status, 127 when python
 * cannot be started. */
static int run_python(const char *python, char *script, const char *csv, const char *dir) {
    char *argv[] = {(char *)python, script, (char *)csv, (char *)dir, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, python, NULL, NULL, argv, environ)) return 127;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int cli_plot_training(const char *csv, const char *dir) {
    char script[PATH_MAX + 32];
    if (!find_script(script, sizeof script)) {
        fprintf(stderr, "warning: no plots: %s not found (set DMVJND_PLOT_SCRIPT); the CSV log is %s\n", SCRIPT_NAME,
                csv);
        return 0;
    }
    /* $DMVJND_PYTHON, else the first python3 with matplotlib: the system's
     * (python3-matplotlib), then the one on PATH */
    const char *env = getenv("DMVJND_PYTHON");
    const char *pythons[3] = {env && *env ? env : "/usr/bin/python3", env && *env ? NULL : "python3", NULL};
    int st = 127;
    for (int i = 0; pythons[i]; i++) {
        st = run_python(pythons[i], script, csv, dir);
        if (st == 0) return 1;
        if (st != 127 && st != 4) break; /* the script ran and failed: its message is above */
    }
    if (st == 4)
        fprintf(stderr, "warning: no plots: python3-matplotlib is not installed\n");
    else if (st == 127)
        fprintf(stderr, "warning: no plots: python3 not found; plot later with: python3 %s %s %s\n", script, csv,
                dir);
    else
        fprintf(stderr, "warning: no plots: %s failed on %s (its message is above)\n", script, csv);
    return 0;
}
