#include "train/recipe.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void recipe_add(recipe_buf *r, const char *key, const char *fmt, ...) {
    if (r->overflow || r->n >= r->max) {
        r->overflow = 1;
        return;
    }
    size_t klen = strlen(key) + 1;
    if (r->used + klen >= r->size) {
        r->overflow = 1;
        return;
    }
    char *k = r->buf + r->used;
    memcpy(k, key, klen);
    r->used += klen;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(r->buf + r->used, r->size - r->used, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len + 1 > r->size - r->used) {
        r->overflow = 1;
        return;
    }
    r->kv[r->n].key = k;
    r->kv[r->n].value = r->buf + r->used;
    r->n++;
    r->used += (size_t)len + 1;
}

int recipe_parse_triple(const char *s, float v[3]) {
    const char *c = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        double d = strtod(c, &end);
        if (end == c || !isfinite(d)) return -1;
        v[i] = (float)d;
        c = end;
        if (i < 2) {
            if (*c != ',') return -1;
            c++;
        }
    }
    return *c ? -1 : 0;
}
