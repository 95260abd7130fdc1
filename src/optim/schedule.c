/* Learning-rate schedules: closed forms of PyTorch's MultiStepLR,
 * CosineAnnealingLR, OneCycleLR and LinearLR warm-up (see optim.h), and the
 * parser of their text form.
 *
 * PyTorch's schedulers mostly update the rate recursively (lr *= ratio);
 * closed forms are used here so lr(step) is a pure function that a resumed
 * run can evaluate at any step without replaying the history. The two agree
 * to rounding (tests/test_schedule.c checks against PyTorch's values). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/dmvjnd.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

dj_schedule dj_schedule_defaults(int kind, double base_lr, int64_t total_steps) {
    dj_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.base_lr = base_lr;
    s.total_steps = total_steps;
    s.gamma = 0.1;
    s.min_lr = 0.0;
    s.pct_start = 0.3;
    s.div_factor = 25.0;
    s.final_div_factor = 1e4;
    s.warmup_steps = 0;
    s.warmup_start = 0.0;
    return s;
}

int dj_schedule_check(const dj_schedule *s) {
    if (!s) return dj_error(DJ_EINVAL, "schedule: NULL config");
    if (!isfinite(s->base_lr) || s->base_lr < 0)
        return dj_error(DJ_EINVAL, "schedule: base_lr %g must be finite and >= 0", s->base_lr);
    if (s->warmup_steps < 0)
        return dj_error(DJ_EINVAL, "schedule: warmup_steps %lld must be >= 0", (long long)s->warmup_steps);
    if (!(s->warmup_start >= 0 && s->warmup_start <= 1))
        return dj_error(DJ_EINVAL, "schedule: warm-up start factor %g must be in [0, 1]", s->warmup_start);
    switch (s->kind) {
    case DJ_SCHED_CONSTANT: return DJ_OK;
    case DJ_SCHED_STEP:
        if (s->n_milestones < 0 || s->n_milestones > DJ_SCHED_MAX_MILESTONES)
            return dj_error(DJ_EINVAL, "schedule: %d milestones (at most %d)", s->n_milestones,
                            DJ_SCHED_MAX_MILESTONES);
        for (int i = 0; i < s->n_milestones; i++) {
            if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] <= s->milestones[i - 1]))
                return dj_error(DJ_EINVAL, "schedule: milestones must be >= 0 and strictly increasing (milestone %d is %lld)",
                                i, (long long)s->milestones[i]);
        }
        if (!isfinite(s->gamma) || s->gamma <= 0)
            return dj_error(DJ_EINVAL, "schedule: gamma %g must be finite and > 0", s->gamma);
        /* Each factor finite is not enough: gamma 1e284 twice is +inf. */
        if (!isfinite(s->base_lr * pow(s->gamma, (double)s->n_milestones)))
            return dj_error(DJ_EINVAL, "schedule: the rate after the last milestone, %g * %g^%d, is not finite",
                            s->base_lr, s->gamma, s->n_milestones);
        return DJ_OK;
    case DJ_SCHED_COSINE:
        if (s->total_steps < 1)
            return dj_error(DJ_EINVAL, "schedule: cosine needs total_steps >= 1 (got %lld)", (long long)s->total_steps);
        if (!isfinite(s->min_lr) || s->min_lr < 0)
            return dj_error(DJ_EINVAL, "schedule: min_lr %g must be finite and >= 0", s->min_lr);
        return DJ_OK;
    case DJ_SCHED_ONECYCLE:
        if (s->total_steps < 1)
            return dj_error(DJ_EINVAL, "schedule: onecycle needs total_steps >= 1 (got %lld)", (long long)s->total_steps);
        if (!(s->pct_start > 0 && s->pct_start < 1))
            return dj_error(DJ_EINVAL, "schedule: onecycle pct_start %g must be in (0, 1)", s->pct_start);
        /* Both phases need a length > 0, else PyTorch divides by zero. */
        if (!(s->pct_start * (double)s->total_steps > 1))
            return dj_error(DJ_EINVAL,
                            "schedule: onecycle warm-up phase is empty (pct_start %g * total_steps %lld must exceed 1)",
                            s->pct_start, (long long)s->total_steps);
        if (!isfinite(s->div_factor) || s->div_factor <= 0)
            return dj_error(DJ_EINVAL, "schedule: onecycle div_factor %g must be finite and > 0", s->div_factor);
        if (!isfinite(s->final_div_factor) || s->final_div_factor <= 0)
            return dj_error(DJ_EINVAL, "schedule: onecycle final_div_factor %g must be finite and > 0",
                            s->final_div_factor);
        if (!isfinite(s->base_lr / s->div_factor / s->final_div_factor))
            return dj_error(DJ_EINVAL, "schedule: onecycle's final rate %g / %g / %g is not finite", s->base_lr,
                            s->div_factor, s->final_div_factor);
        if (s->warmup_steps != 0)
            return dj_error(DJ_EINVAL, "schedule: onecycle has its own warm-up; warmup_steps must be 0");
        return DJ_OK;
    default: return dj_error(DJ_EINVAL, "schedule: unknown kind %d", s->kind);
    }
}

/* PyTorch's OneCycleLR._annealing_cos. */
static double anneal_cos(double start, double end, double pct) {
    return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1.0);
}

static double onecycle_lr(const dj_schedule *s, int64_t step) {
    /* Same expressions as OneCycleLR: phase ends at float(pct*total) - 1 and
     * total - 1; a step past the end stays at the final rate. */
    double initial = s->base_lr / s->div_factor;
    double final_lr = initial / s->final_div_factor;
    double end1 = s->pct_start * (double)s->total_steps - 1.0;
    double end2 = (double)s->total_steps - 1.0;
    double x = (double)step;
    if (x >= end2 || !(end2 > end1)) return final_lr;
    if (x <= end1) return end1 > 0 ? anneal_cos(initial, s->base_lr, x / end1) : s->base_lr;
    return anneal_cos(s->base_lr, final_lr, (x - end1) / (end2 - end1));
}

double dj_schedule_lr(const dj_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    double lr;
    switch (s->kind) {
    case DJ_SCHED_STEP: {
        int k = 0; /* bisect_right(milestones, step) */
        while (k < s->n_milestones && k < DJ_SCHED_MAX_MILESTONES && s->milestones[k] <= step) k++;
        lr = s->base_lr * pow(s->gamma, (double)k);
        break;
    }
    case DJ_SCHED_COSINE: {
        int64_t t_max = s->total_steps > 0 ? s->total_steps : 1;
        int64_t t = step < t_max ? step : t_max;
        lr = s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(M_PI * (double)t / (double)t_max)) / 2.0;
        break;
    }
    case DJ_SCHED_ONECYCLE: return onecycle_lr(s, step);
    case DJ_SCHED_CONSTANT:
    default: lr = s->base_lr; break;
    }
    if (step < s->warmup_steps) /* LinearLR's closed form with end_factor 1 */
        lr *= s->warmup_start + (1.0 - s->warmup_start) * (double)step / (double)s->warmup_steps;
    return lr;
}

/* ------------------------------------------------------------------ parser */

/* A field of the spec: [p, end) with end at the next ':' / ',' / '+' / NUL.
 * Parsers take the text field by field so each error can name the field. */
typedef struct cursor {
    const char *p;
    const char *spec; /* whole spec, quoted in error messages */
} cursor;

static size_t field_len(const char *p) { return strcspn(p, ":,+"); }

static int bad(const cursor *c, const char *what) {
    return dj_error(DJ_EINVAL, "learning-rate schedule \"%s\": %s", c->spec, what);
}

/* A decimal number filling the whole field. */
static int take_number(cursor *c, double *out, const char *what) {
    size_t len = field_len(c->p);
    char buf[64];
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a finite number", what);
    if (len == 0 || len >= sizeof buf) return bad(c, msg);
    memcpy(buf, c->p, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v)) return bad(c, msg);
    *out = v;
    c->p += len;
    return DJ_OK;
}

/* A non-negative integer (digits only) filling the whole field, times unit. */
static int take_count(cursor *c, int64_t unit, int64_t *out, const char *what) {
    size_t len = field_len(c->p);
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a non-negative integer", what);
    if (len == 0) return bad(c, msg);
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = c->p[i];
        if (ch < '0' || ch > '9') return bad(c, msg);
        if (v > (INT64_MAX - 9) / 10) return bad(c, "a step count is too large");
        v = v * 10 + (ch - '0');
    }
    if (unit > 1 && v > INT64_MAX / unit) return bad(c, "a step count is too large");
    *out = v * unit;
    c->p += len;
    return DJ_OK;
}

/* Consume `ch` if it is next. */
static int accept(cursor *c, char ch) {
    if (*c->p != ch) return 0;
    c->p++;
    return 1;
}

/* Consume a keyword that fills the whole field. */
static int accept_word(cursor *c, const char *word) {
    size_t len = strlen(word);
    if (field_len(c->p) != len || strncmp(c->p, word, len) != 0) return 0;
    c->p += len;
    return 1;
}

int dj_schedule_parse(dj_schedule *out, const char *spec, double base_lr, int64_t total_steps,
                      int64_t steps_per_unit) {
    if (!out || !spec) return dj_error(DJ_EINVAL, "learning-rate schedule: NULL argument");
    if (steps_per_unit < 1)
        return dj_error(DJ_EINVAL, "learning-rate schedule \"%s\": steps_per_unit %lld must be >= 1", spec,
                        (long long)steps_per_unit);
    cursor cur = {spec, spec};
    cursor *c = &cur;
    dj_schedule s;
    int rc;

    if (accept_word(c, "constant")) {
        s = dj_schedule_defaults(DJ_SCHED_CONSTANT, base_lr, total_steps);
    } else if (accept_word(c, "step")) {
        s = dj_schedule_defaults(DJ_SCHED_STEP, base_lr, total_steps);
        if (!accept(c, ':')) return bad(c, "step needs milestones, e.g. step:30,60");
        do {
            if (s.n_milestones == DJ_SCHED_MAX_MILESTONES) return bad(c, "too many milestones (at most 16)");
            if ((rc = take_count(c, steps_per_unit, &s.milestones[s.n_milestones], "a milestone"))) return rc;
            s.n_milestones++;
        } while (accept(c, ','));
        if (accept(c, ':') && (rc = take_number(c, &s.gamma, "gamma"))) return rc;
    } else if (accept_word(c, "cosine")) {
        s = dj_schedule_defaults(DJ_SCHED_COSINE, base_lr, total_steps);
        if (accept(c, ':') && (rc = take_number(c, &s.min_lr, "the minimum learning rate"))) return rc;
    } else if (accept_word(c, "onecycle")) {
        s = dj_schedule_defaults(DJ_SCHED_ONECYCLE, base_lr, total_steps);
        if (accept(c, ':')) {
            if ((rc = take_number(c, &s.pct_start, "pct_start"))) return rc;
            if (accept(c, ':')) {
                if ((rc = take_number(c, &s.div_factor, "div_factor"))) return rc;
                if (accept(c, ':') && (rc = take_number(c, &s.final_div_factor, "final_div_factor"))) return rc;
            }
        }
    } else {
        return bad(c, "expected constant, step:..., cosine or onecycle at the start");
    }

    if (accept(c, '+')) {
        if (!accept_word(c, "warmup")) return bad(c, "expected warmup:LENGTH after '+'");
        if (!accept(c, ':')) return bad(c, "warmup needs a length, e.g. warmup:5");
        if ((rc = take_count(c, steps_per_unit, &s.warmup_steps, "the warm-up length"))) return rc;
        if (accept(c, ':') && (rc = take_number(c, &s.warmup_start, "the warm-up start factor"))) return rc;
    }
    if (*c->p != '\0') {
        char msg[128];
        snprintf(msg, sizeof msg, "unexpected text at character %d (\"%.20s\")", (int)(c->p - spec) + 1, c->p);
        return bad(c, msg);
    }

    /* Range errors come from the checker; prefix them with the spec. */
    if ((rc = dj_schedule_check(&s))) {
        char why[512];
        snprintf(why, sizeof why, "%s", dj_last_error());
        const char *tail = strncmp(why, "schedule: ", 10) == 0 ? why + 10 : why;
        return bad(c, tail);
    }
    *out = s;
    return DJ_OK;
}
