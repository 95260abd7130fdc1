/* Key/value text pairs written into one caller buffer: the training recipes
 * that weights files and checkpoints carry as metadata (classifier and JND
 * training share it), and the parsing of their values. */
#ifndef DMVJND_TRAIN_RECIPE_H
#define DMVJND_TRAIN_RECIPE_H

#include <stddef.h>

#include "dmvjnd/checkpoint.h"

/* Appends "key\0value\0" to buf and a pair pointing at them to kv (at most
 * max pairs). A pair that does not fit sets overflow, and later adds do
 * nothing, so the caller checks once at the end. */
typedef struct recipe_buf {
    dj_kv *kv;
    int n, max;
    char *buf;
    size_t size, used;
    int overflow;
} recipe_buf;

void recipe_add(recipe_buf *r, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* "a,b,c" (a recipe value such as the normalisation's mean) -> three
 * finite floats; 0 on success, -1 otherwise. */
int recipe_parse_triple(const char *s, float v[3]);

#endif
