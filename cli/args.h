/* Command-line option parsing shared by every subcommand: a table of
 * --long options, each bound to a variable, with the help text that
 * `dmvjnd <command> --help` prints. */
#ifndef DMVJND_CLI_ARGS_H
#define DMVJND_CLI_ARGS_H

/* Exit codes of the dmvjnd command (documented in docs/cli.md). */
enum {
    EXIT_OK = 0,
    EXIT_FAILURE_GENERIC = 1, /* a job ran but failed its goal (e.g. NaN loss)   */
    EXIT_USAGE = 2,           /* bad command line                               */
    EXIT_INPUT = 3,           /* a file could not be read or is malformed       */
    EXIT_INTERNAL = 4         /* out of memory, backend failure, bug            */
};

enum opt_kind { OPT_FLAG, OPT_INT, OPT_FLOAT, OPT_STRING };

typedef struct cli_opt {
    const char *name; /* without the leading "--" */
    int kind;
    void *dst;        /* int*, int*, double*, const char** */
    const char *help;
    double min, max;  /* accepted range for OPT_INT / OPT_FLOAT (min > max: any) */
} cli_opt;

/* Parses argv[first..argc). Returns EXIT_OK, or EXIT_USAGE after printing
 * what is wrong to stderr. `--help` prints usage and sets *help_shown. */
int cli_parse(const char *cmd, const char *summary, int argc, char **argv, int first, const cli_opt *opts,
              int nopts, int *help_shown);

/* Maps a library status code to the command's exit code. */
int cli_exit_code(int status);

/* Prints "dmvjnd <cmd>: <library message>" to stderr and returns the exit code. */
int cli_fail(const char *cmd, int status);

#endif
