#include "args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"

static void usage(const char *cmd, const char *summary, const cli_opt *opts, int nopts) {
    printf("usage: dmvjnd %s [options]\n%s\n\noptions:\n", cmd, summary);
    for (int i = 0; i < nopts; i++) {
        const char *arg = opts[i].kind == OPT_FLAG ? "" : opts[i].kind == OPT_STRING ? " S" : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", opts[i].name, arg);
        printf("  %-22s %s\n", left, opts[i].help);
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

static int parse_number(const char *cmd, const cli_opt *o, const char *text) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || v != v) {
        fprintf(stderr, "dmvjnd %s: --%s expects a number, got '%s'\n", cmd, o->name, text);
        return EXIT_USAGE;
    }
    /* (long long)v is undefined beyond its range: huge values are integers
     * anyway, and the range check below refuses them. */
    if (o->kind == OPT_INT && fabs(v) < 9e18 && v != (double)(long long)v) {
        fprintf(stderr, "dmvjnd %s: --%s expects an integer, got '%s'\n", cmd, o->name, text);
        return EXIT_USAGE;
    }
    if (o->min <= o->max && (v < o->min || v > o->max)) {
        fprintf(stderr, "dmvjnd %s: --%s %s is out of range [%g, %g]\n", cmd, o->name, text, o->min, o->max);
        return EXIT_USAGE;
    }
    if (o->kind == OPT_INT && !(v >= INT_MIN && v <= INT_MAX)) {
        fprintf(stderr, "dmvjnd %s: --%s %s is out of range\n", cmd, o->name, text);
        return EXIT_USAGE;
    }
    if (o->kind == OPT_INT)
        *(int *)o->dst = (int)v;
    else
        *(double *)o->dst = v;
    return EXIT_OK;
}

int cli_parse(const char *cmd, const char *summary, int argc, char **argv, int first, const cli_opt *opts,
              int nopts, int *help_shown) {
    *help_shown = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(cmd, summary, opts, nopts);
            *help_shown = 1;
            return EXIT_OK;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "dmvjnd %s: unexpected argument '%s' (options start with --; see --help)\n", cmd, a);
            return EXIT_USAGE;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (int j = 0; j < nopts; j++)
            if (strlen(opts[j].name) == len && !strncmp(opts[j].name, name, len)) o = &opts[j];
        if (!o) {
            fprintf(stderr, "dmvjnd %s: unknown option '%.*s' (see dmvjnd %s --help)\n", cmd, (int)len + 2, a, cmd);
            return EXIT_USAGE;
        }
        if (o->kind == OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "dmvjnd %s: --%s takes no value\n", cmd, o->name);
                return EXIT_USAGE;
            }
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "dmvjnd %s: --%s needs a value\n", cmd, o->name);
            return EXIT_USAGE;
        }
        if (o->kind == OPT_STRING) {
            *(const char **)o->dst = val;
        } else {
            int rc = parse_number(cmd, o, val);
            if (rc) return rc;
        }
    }
    return EXIT_OK;
}

int cli_exit_code(int status) {
    switch (status) {
    case DJ_OK: return EXIT_OK;
    case DJ_EINVAL: return EXIT_USAGE;
    case DJ_EIO:
    case DJ_EFORMAT:
    case DJ_ENOTFOUND:
    case DJ_ENUMERIC: return EXIT_INPUT;
    default: return EXIT_INTERNAL;
    }
}

int cli_fail(const char *cmd, int status) {
    fprintf(stderr, "dmvjnd %s: %s\n", cmd, dj_last_error()[0] ? dj_last_error() : dj_strerror(status));
    return cli_exit_code(status);
}
