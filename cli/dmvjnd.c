/* dmvjnd: the command-line front end. Dispatches to cli/cmd_<name>.c. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "dmvjnd/conv_path.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"bench", cmd_bench, "training-step and inference throughput (images/s)"},
    {"train-classifier", cmd_train_classifier, "train a CIFAR-10 classifier (checkpoints, resume, CSV log)"},
    {"classify", cmd_classify, "labels and confidences of classifiers on CIFAR-10 or PNG images"},
    {"cam", cmd_cam, "class activation maps of classifiers (PNG heat maps, raw floats)"},
    {"train", cmd_train, "train the DMV-JND network (presets paper/fast, CSV, plots, checkpoints, resume)"},
    {"generate", cmd_generate, "the JND image e and the stored x + e of CIFAR-10 records or PNG files"},
    {"eval", cmd_eval, "RCA, PSNR, WGN and homogeneity tests of a DMV-JND model (Markdown, JSON, montage)"},
    {"compress", cmd_compress, "JND-guided JPEG/WebP coding for machines: bits vs relative accuracy (RCA)"},
};

static void usage(FILE *f) {
    fprintf(f, "dmvjnd %s: Just Noticeable Difference for Deep Machine Vision\n\n", dj_version());
    fprintf(f, "usage: dmvjnd [--conv PATH] <command> [options]   (dmvjnd <command> --help for its options)\n\n"
               "  --conv PATH        kernel of the 3x3 stride-1 convolutions: winograd (default: the fastest\n"
               "                     Winograd path of this CPU), winograd-avx2, winograd-avx512 or direct\n"
               "                     (oneDNN); overrides the environment variable DMVJND_CONV (same names)\n"
               "\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("dmvjnd %s\n", dj_version());
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--conv")) {
        if (argc < 3) {
            fprintf(stderr, "dmvjnd: --conv takes winograd, winograd-avx2, winograd-avx512 or direct\n");
            return EXIT_USAGE;
        }
        /* A forced path the CPU lacks is an error, never a silent fallback. */
        if (dj_conv_set_path(argv[2]) != DJ_OK) {
            fprintf(stderr, "dmvjnd: --conv: %s\n", dj_last_error());
            return EXIT_USAGE;
        }
        argc -= 2;
        argv += 2;
        if (argc < 2) {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (dj_conv_path_check() != DJ_OK) { /* a bad DMVJND_CONV */
        fprintf(stderr, "dmvjnd: %s\n", dj_last_error());
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dmvjnd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
