/* Parsing metadata values: see dmvjnd/safetensors.h. */
#include <math.h>
#include <stdlib.h>

#include "dmvjnd/core.h"
#include "dmvjnd/safetensors.h"

int dj_meta_parse_float3(const char *s, float v[3]) {
    if (!s) return dj_error(DJ_EFORMAT, "no value where three numbers a,b,c were expected");
    const char *c = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        double d = strtod(c, &end);
        if (end == c || !isfinite(d)) return dj_error(DJ_EFORMAT, "'%.60s' is not three numbers a,b,c", s);
        v[i] = (float)d;
        c = end;
        if (i < 2) {
            if (*c != ',') return dj_error(DJ_EFORMAT, "'%.60s' is not three numbers a,b,c", s);
            c++;
        }
    }
    return *c ? dj_error(DJ_EFORMAT, "'%.60s' is not three numbers a,b,c", s) : DJ_OK;
}
