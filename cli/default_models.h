/* --model's default for generate, eval, classify and cam: the shipped
 * models, found by dj_model_find (dmvjnd/model_find.h; docs/install.md). */
#ifndef DMVJND_CLI_DEFAULT_MODELS_H
#define DMVJND_CLI_DEFAULT_MODELS_H

#include "dmvjnd/model_find.h"

/* *path = the shipped JND model's path (static storage), or prints why it
 * was not found and returns the exit code (3). */
int cli_default_jnd_model(const char *cmd, const char **path);

/* *paths = a malloc'ed array of the four shipped classifiers' paths (free
 * the array only), *n = 4; or prints why and returns the exit code. */
int cli_default_classifiers(const char *cmd, const char ***paths, int *n);

#endif
