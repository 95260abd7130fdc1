/* What the shipped-model tests (test_shipped_models.c, test_shipped_jnd.c)
 * share: models/README.md, whose table rows state the figures they check. */
#ifndef DMVJND_TESTS_SHIPPED_H
#define DMVJND_TESTS_SHIPPED_H

#include <stdio.h>
#include <stdlib.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/fileio.h"

/* models/README.md as a NUL-terminated string (free it), or NULL after
 * saying why on stderr (tests run from the repository root). */
static char *shipped_readme(const char *test) {
    void *data = NULL;
    size_t size = 0;
    if (dj_read_file("models/README.md", 1 << 20, &data, &size) != 0) {
        fprintf(stderr, "%s: %s (run from the repository root)\n", test, dj_last_error());
        return NULL;
    }
    char *text = realloc(data, size + 1);
    if (!text) {
        free(data);
        fprintf(stderr, "%s: out of memory\n", test);
        return NULL;
    }
    text[size] = '\0';
    return text;
}

#endif
