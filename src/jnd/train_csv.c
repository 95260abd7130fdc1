/* The JND training's CSV log: its header (one column per classifier tag)
 * and one row per epoch. See dmvjnd/jnd_train.h. */
#include <stdio.h>

#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/jnd_train.h"
#include "jnd/train_internal.h"

/* ============================================================== CSV */

int dj_jnd_csv_header(char *buf, size_t size, const char tags[][32], int count) {
    if (!buf || count < 1 || count > DJ_JND_MAX_CLASSIFIERS) return dj_error(DJ_EINVAL, "jnd csv header: bad args");
    size_t len = 0;
#define ADD(...)                                                                                                      \
    do {                                                                                                              \
        int m_ = snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__);                                       \
        if (m_ < 0) return dj_error(DJ_EINTERNAL, "jnd csv header");                                                  \
        len += (size_t)m_;                                                                                            \
    } while (0)
    ADD("epoch,step,lr_first,lr_last");
    const char *sp[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        ADD(",%s_loss,%s_loss1,%s_loss2,%s_loss3", sp[s], sp[s], sp[s], sp[s]);
        for (int k = 0; k < count; k++) ADD(",%s_rca_%s", sp[s], tags[k]);
        ADD(",%s_rca_mean,%s_psnr,%s_mean_abs_e,%s_n,%s_n0", sp[s], sp[s], sp[s], sp[s], sp[s]);
    }
    ADD(",test_float_rca_mean,test_float_psnr,test_images,images_per_s,epoch_s,wall_s");
#undef ADD
    if (len >= size) return dj_error(DJ_EINVAL, "jnd csv header: buffer of %zu bytes is too small", size);
    return DJ_OK;
}

int dj_jnd_csv_row(char *row, size_t size, const dj_jnd_epoch_stats *st, int K) {
    size_t len = 0;
#define ADD(...)                                                                                                      \
    do {                                                                                                              \
        int m_ = snprintf(row + len, len < size ? size - len : 0, __VA_ARGS__);                           \
        if (m_ > 0) len += (size_t)m_;                                                                                \
    } while (0)
    ADD("%d,%lld,%.8g,%.8g", st->epoch, (long long)st->step, st->lr_first, st->lr_last);
    const dj_jnd_metrics *ms[2] = {&st->train, &st->test};
    for (int s = 0; s < 2; s++) {
        const dj_jnd_metrics *m = ms[s];
        if (m->images > 0) {
            ADD(",%.6f,%.6f,%.6f,%.6f", m->loss, m->loss1, m->loss2, m->loss3);
            for (int k = 0; k < K; k++) ADD(",%.6f", m->rca[k]);
            ADD(",%.6f,%.4f,%.4f,%.6f,%.6f", m->rca_mean, m->psnr, m->mean_abs_e, m->n_target, m->n0);
        } else {
            ADD(",,,,");
            for (int k = 0; k < K; k++) ADD(",");
            ADD(",,,,,");
        }
    }
    if (st->test.images > 0)
        ADD(",%.6f,%.4f", st->test_float.rca_mean, st->test_float.psnr);
    else
        ADD(",,");
    ADD(",%d,%.1f,%.3f,%.3f", st->test.images, st->images_per_s, st->epoch_s, st->wall_s);
#undef ADD
    if (len >= size) return dj_error(DJ_EINTERNAL, "jnd csv row too long");
    return DJ_OK;
}
