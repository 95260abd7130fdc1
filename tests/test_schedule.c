/* Learning-rate schedules: hand-computed values, PyTorch's schedulers
 * (tests/data/optim_expected.h), the text grammar and its errors. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "data/optim_expected.h"
#include "dmvjnd/dmvjnd.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static double lr_of(const char *spec, double base, int64_t total, int64_t step) {
    dj_schedule s;
    int rc = dj_schedule_parse(&s, spec, base, total, 1);
    if (rc) {
        fprintf(stderr, "parse \"%s\" failed: %s\n", spec, dj_last_error());
        return NAN;
    }
    return dj_schedule_lr(&s, step);
}

static void test_constant(void) {
    CHECK(lr_of("constant", 0.1, 0, 0) == 0.1);
    CHECK(lr_of("constant", 0.1, 0, 123456789) == 0.1);
    /* warm-up from 0: step/W of the rate, then the rate */
    CHECK_CLOSE(lr_of("constant+warmup:10", 0.5, 0, 0), 0.0, 0, 0);
    CHECK_CLOSE(lr_of("constant+warmup:10", 0.5, 0, 5), 0.25, 1e-15, 0);
    CHECK_CLOSE(lr_of("constant+warmup:10", 0.5, 0, 9), 0.45, 1e-15, 0);
    CHECK(lr_of("constant+warmup:10", 0.5, 0, 10) == 0.5);
    /* start factor 0.1: 0.5 * (0.1 + 0.9 * 5/10) = 0.275 */
    CHECK_CLOSE(lr_of("constant+warmup:10:0.1", 0.5, 0, 5), 0.275, 1e-15, 0);
    CHECK_CLOSE(lr_of("constant+warmup:10:0.1", 0.5, 0, 0), 0.05, 1e-15, 0);
}

static void test_step(void) {
    const char *spec = "step:30,60:0.1";
    CHECK(lr_of(spec, 0.1, 0, 0) == 0.1);
    CHECK(lr_of(spec, 0.1, 0, 29) == 0.1);
    CHECK_CLOSE(lr_of(spec, 0.1, 0, 30), 0.01, 0, 1e-15); /* at the milestone already decayed */
    CHECK_CLOSE(lr_of(spec, 0.1, 0, 59), 0.01, 0, 1e-15);
    CHECK_CLOSE(lr_of(spec, 0.1, 0, 60), 0.001, 0, 1e-15);
    CHECK_CLOSE(lr_of(spec, 0.1, 0, 100000), 0.001, 0, 1e-15);
    CHECK_CLOSE(lr_of("step:5", 1.0, 0, 5), 0.1, 0, 1e-15); /* default gamma */
    /* warm-up multiplies the first steps: 1.0 * (0 + 1 * 2/4) */
    CHECK_CLOSE(lr_of("step:2:0.5+warmup:4", 1.0, 0, 2), 0.25, 0, 1e-15);
    CHECK_CLOSE(lr_of("step:2:0.5+warmup:4", 1.0, 0, 4), 0.5, 0, 1e-15);
}

static void test_cosine(void) {
    CHECK(lr_of("cosine", 1.0, 100, 0) == 1.0);
    CHECK_CLOSE(lr_of("cosine", 1.0, 100, 25), 0.8535533905932737, 0, 1e-14); /* (1 + cos(pi/4)) / 2 */
    CHECK_CLOSE(lr_of("cosine", 1.0, 100, 50), 0.5, 0, 1e-14);
    CHECK_CLOSE(lr_of("cosine", 1.0, 100, 75), 0.14644660940672624, 0, 1e-14);
    CHECK_CLOSE(lr_of("cosine", 1.0, 100, 100), 0.0, 1e-16, 0);
    CHECK_CLOSE(lr_of("cosine", 1.0, 100, 250), 0.0, 1e-16, 0); /* stays at the minimum */
    /* with a floor: 0.01 + 0.99 * 0.5 */
    CHECK_CLOSE(lr_of("cosine:0.01", 1.0, 100, 50), 0.505, 0, 1e-14);
    CHECK_CLOSE(lr_of("cosine:0.01", 1.0, 100, 1000), 0.01, 0, 1e-14);
    /* warm-up 10 from 0 over cosine(200): step 5 -> 0.5 * (1 + cos(pi*5/200))/2 */
    CHECK_CLOSE(lr_of("cosine+warmup:10", 1.0, 200, 5), 0.5 * (1 + cos(M_PI * 5 / 200)) / 2, 0, 1e-14);
    CHECK_CLOSE(lr_of("cosine+warmup:10", 1.0, 200, 10), (1 + cos(M_PI * 10 / 200)) / 2, 0, 1e-14);
    CHECK(lr_of("cosine+warmup:10", 1.0, 200, -3) == 0.0); /* negative steps count as 0 */
}

static void test_onecycle(void) {
    /* max 1, 100 steps, pct 0.3: initial 1/25 = 0.04, final 0.04/1e4 = 4e-6;
     * peak at step 0.3*100 - 1 = 29, end at step 99. */
    const char *spec = "onecycle:0.3";
    CHECK_CLOSE(lr_of(spec, 1.0, 100, 0), 0.04, 0, 1e-14);
    CHECK_CLOSE(lr_of(spec, 1.0, 100, 29), 1.0, 0, 1e-14);
    /* halfway up, at step 14.5 the rate would be (0.04+1)/2; at step 14:
     * 1 + (0.04 - 1)/2 * (cos(pi*14/29) + 1) */
    CHECK_CLOSE(lr_of(spec, 1.0, 100, 14), 1 + (0.04 - 1) / 2 * (cos(M_PI * 14 / 29) + 1), 0, 1e-14);
    /* halfway down: step 29 + 35 = 64 -> 4e-6 + (1 - 4e-6)/2 = 0.500002 */
    CHECK_CLOSE(lr_of(spec, 1.0, 100, 64), 0.500002, 0, 1e-14);
    CHECK_CLOSE(lr_of(spec, 1.0, 100, 99), 4e-6, 0, 1e-12);
    CHECK_CLOSE(lr_of(spec, 1.0, 100, 500), 4e-6, 0, 1e-12);
    /* defaults are OneCycleLR's: pct 0.3, div 25, final div 1e4 */
    CHECK(lr_of("onecycle", 1.0, 100, 64) == lr_of(spec, 1.0, 100, 64));
    CHECK_CLOSE(lr_of("onecycle:0.5:10:100", 2.0, 11, 0), 0.2, 0, 1e-14);
    CHECK_CLOSE(lr_of("onecycle:0.5:10:100", 2.0, 11, 10), 0.002, 0, 1e-12);
}

/* PyTorch's schedulers (run by tools/torch/optim_reference.py). Its
 * recursive updates and these closed forms agree to rounding. */
static void test_torch_parity(void) {
    for (int k = 0; k < OPTX_SCHEDS; k++) {
        const optx_sched *x = &optx_scheds[k];
        dj_schedule s;
        CHECK_OK(dj_schedule_parse(&s, x->spec, x->base_lr, x->total_steps, 1));
        double worst = 0;
        for (int i = 0; i < x->count; i++) {
            double got = dj_schedule_lr(&s, i);
            double e = fabs(got - x->lr[i]) / (1e-15 + 1e-9 * fabs(x->lr[i]));
            if (!(e <= worst)) worst = e;
        }
        if (!(worst <= 1)) fprintf(stderr, "  torch schedule %s: off by %.3g of tolerance\n", x->spec, worst);
        CHECK(worst <= 1);
    }
}

static void test_parse_fields(void) {
    dj_schedule s;
    /* milestones and warm-up in epochs of 390 steps */
    CHECK_OK(dj_schedule_parse(&s, "step:30,60,90:0.2+warmup:5:0.1", 0.1, 39000, 390));
    CHECK(s.kind == DJ_SCHED_STEP && s.n_milestones == 3);
    CHECK(s.milestones[0] == 11700 && s.milestones[1] == 23400 && s.milestones[2] == 35100);
    CHECK(s.gamma == 0.2 && s.warmup_steps == 1950 && s.warmup_start == 0.1);
    CHECK(s.base_lr == 0.1 && s.total_steps == 39000);

    CHECK_OK(dj_schedule_parse(&s, "cosine:1e-5", 0.1, 1000, 1));
    CHECK(s.kind == DJ_SCHED_COSINE && s.min_lr == 1e-5 && s.warmup_steps == 0);

    CHECK_OK(dj_schedule_parse(&s, "onecycle:0.25:10:100", 0.4, 1000, 1));
    CHECK(s.kind == DJ_SCHED_ONECYCLE && s.pct_start == 0.25 && s.div_factor == 10 && s.final_div_factor == 100);
    CHECK_OK(dj_schedule_parse(&s, "onecycle", 0.4, 1000, 1));
    CHECK(s.pct_start == 0.3 && s.div_factor == 25 && s.final_div_factor == 1e4);

    CHECK_OK(dj_schedule_parse(&s, "constant", 0.1, 0, 1));
    CHECK(s.kind == DJ_SCHED_CONSTANT);
    CHECK_OK(dj_schedule_check(&s));

    dj_schedule d = dj_schedule_defaults(DJ_SCHED_COSINE, 0.1, 10);
    CHECK(d.gamma == 0.1 && d.min_lr == 0 && d.pct_start == 0.3 && d.div_factor == 25 && d.final_div_factor == 1e4);
    CHECK_OK(dj_schedule_check(&d));
}

static void test_parse_errors(void) {
    static const struct {
        const char *spec;
        const char *msg;
    } bad[] = {
        {"", "expected constant"},
        {"linear", "expected constant"},
        {"Cosine", "expected constant"},
        {"cosinex", "expected constant"},
        {"step", "milestones"},
        {"step:", "milestone must be a non-negative integer"},
        {"step:30,,60", "milestone must be a non-negative integer"},
        {"step:30,-60", "milestone must be a non-negative integer"},
        {"step:1.5", "milestone must be a non-negative integer"},
        {"step:60,30", "strictly increasing"},
        {"step:30,30", "strictly increasing"},
        {"step:30,60:0", "gamma"},
        {"step:30,60:abc", "gamma must be a finite number"},
        {"step:30,60:0.1:5", "unexpected text"},
        {"step:1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "too many milestones"},
        {"step:99999999999999999999", "too large"},
        {"cosine:", "minimum learning rate must be a finite number"},
        {"cosine:-1", "min_lr"},
        {"cosine:nan", "finite number"},
        {"cosine:inf", "finite number"},
        {"cosine:1e999", "finite number"},
        {"cosine:0.1x", "finite number"},
        {"cosine+", "expected warmup"},
        {"cosine+warmup", "warmup needs a length"},
        {"cosine+warmup:", "warm-up length"},
        {"cosine+warmup:5:2", "warm-up start factor"},
        {"cosine+warmup:5:0.1:3", "unexpected text"},
        {"cosine+cooldown:5", "expected warmup"},
        {"cosine +warmup:5", "expected constant"},
        {"onecycle:0", "pct_start"},
        {"onecycle:1", "pct_start"},
        {"onecycle:0.001", "warm-up phase is empty"},
        {"onecycle:0.3:0", "div_factor"},
        {"onecycle:0.3:25:-1", "final_div_factor"},
        {"onecycle:0.3+warmup:5", "own warm-up"},
        {"constant,", "unexpected text"},
    };
    dj_schedule s = dj_schedule_defaults(DJ_SCHED_CONSTANT, 0.123, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(dj_schedule_parse(&s, bad[i].spec, 0.1, 100, 1), DJ_EINVAL, bad[i].msg);
        /* the message quotes the spec, and *s is untouched */
        CHECK(strstr(dj_last_error(), "learning-rate schedule \"") != NULL);
        CHECK(s.kind == DJ_SCHED_CONSTANT && s.base_lr == 0.123);
    }
    /* schedules that need a length */
    CHECK_FAILS(dj_schedule_parse(&s, "cosine", 0.1, 0, 1), DJ_EINVAL, "total_steps");
    CHECK_FAILS(dj_schedule_parse(&s, "onecycle", 0.1, 0, 1), DJ_EINVAL, "total_steps");
    CHECK_FAILS(dj_schedule_parse(&s, "constant", -0.1, 0, 1), DJ_EINVAL, "base_lr");
    CHECK_FAILS(dj_schedule_parse(&s, "constant", 0.1, 0, 0), DJ_EINVAL, "steps_per_unit");
    CHECK_FAILS(dj_schedule_parse(&s, "step:3", 0.1, 0, INT64_MAX / 2), DJ_EINVAL, "too large");
    CHECK_FAILS(dj_schedule_parse(&s, NULL, 0.1, 0, 1), DJ_EINVAL, "NULL");
}

static void test_check(void) {
    dj_schedule s = dj_schedule_defaults(DJ_SCHED_STEP, 0.1, 0);
    s.n_milestones = DJ_SCHED_MAX_MILESTONES + 1;
    CHECK_FAILS(dj_schedule_check(&s), DJ_EINVAL, "milestones");
    s = dj_schedule_defaults(DJ_SCHED_STEP, 0.1, 0);
    s.n_milestones = 1;
    s.milestones[0] = -5;
    CHECK_FAILS(dj_schedule_check(&s), DJ_EINVAL, "milestones must be >= 0");
    s = dj_schedule_defaults(DJ_SCHED_CONSTANT, NAN, 0);
    CHECK_FAILS(dj_schedule_check(&s), DJ_EINVAL, "base_lr");
    s = dj_schedule_defaults(DJ_SCHED_CONSTANT, 0.1, 0);
    s.warmup_steps = -1;
    CHECK_FAILS(dj_schedule_check(&s), DJ_EINVAL, "warmup_steps");
    s.kind = 42;
    s.warmup_steps = 0;
    CHECK_FAILS(dj_schedule_check(&s), DJ_EINVAL, "unknown kind");
    /* an unchecked degenerate one-cycle still gives a finite rate */
    s = dj_schedule_defaults(DJ_SCHED_ONECYCLE, 1.0, 1);
    CHECK(dj_schedule_check(&s) == DJ_EINVAL);
    CHECK(isfinite(dj_schedule_lr(&s, 0)));
}

int main(void) {
    RUN(test_constant);
    RUN(test_step);
    RUN(test_cosine);
    RUN(test_onecycle);
    RUN(test_torch_parity);
    RUN(test_parse_fields);
    RUN(test_parse_errors);
    RUN(test_check);
    return check_report("test_schedule");
}
