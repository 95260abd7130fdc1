/* End to end: a small CNN must overfit 500 CIFAR-10 training images to at
 * least 98% training accuracy. Exercises the whole engine together: the
 * CIFAR-10 reader, batch loader, graph forward/backward with every common
 * layer, softmax cross-entropy and Adam. Needs the data set (see
 * scripts/get-cifar10.sh, or set DMVJND_DATA); fails, with that advice,
 * when it is missing. */
#include <stdlib.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/graph.h"

static dj_graph *small_cnn(dj_rng *rng) {
    dj_graph *g;
    if (dj_graph_create(&g, 32, 32, 3)) return NULL;
    int x = dj_graph_conv(g, 0, "conv1", 32, 3, 1, 1, 0);
    x = dj_graph_bn(g, x, "bn1", 1);
    x = dj_graph_maxpool(g, x, 2, 2, 0);
    x = dj_graph_conv(g, x, "conv2", 64, 3, 1, 1, 0);
    x = dj_graph_bn(g, x, "bn2", 1);
    x = dj_graph_maxpool(g, x, 2, 2, 0);
    x = dj_graph_conv(g, x, "conv3", 128, 3, 1, 1, 0);
    x = dj_graph_bn(g, x, "bn3", 1);
    x = dj_graph_gap(g, x);
    x = dj_graph_linear(g, x, "fc", 10, 1);
    if (x < 0 || dj_graph_finalize(g, rng)) {
        fprintf(stderr, "small_cnn: %s\n", dj_last_error());
        dj_graph_destroy(g);
        return NULL;
    }
    return g;
}

static void test_overfit_500(void) {
    const int N = 500, B = 50, EPOCHS = 40;
    dj_cifar10 ds;
    dj_cifar10_opts o = {0, N, 0};
    int rc = dj_cifar10_load(&ds, NULL, "train", &o);
    if (rc) {
        fprintf(stderr, "test_train_e2e: CIFAR-10 not found (%s); run scripts/get-cifar10.sh or set DMVJND_DATA\n",
                dj_last_error());
        SKIP("no CIFAR-10");
    }
    dj_rng rng;
    dj_rng_seed(&rng, 42);
    dj_graph *g = small_cnn(&rng);
    CHECK(g != NULL);
    dj_optim *opt = NULL;
    int np = dj_graph_num_params(g), k = 0;
    dj_param_ref *refs = calloc((size_t)np, sizeof *refs);
    for (int i = 0; i < np; i++) {
        const dj_param *p = dj_graph_param(g, i);
        if (p->trainable) refs[k++] = (dj_param_ref){p->data, p->grad, p->count, p->decay};
    }
    dj_optim_config oc = dj_optim_defaults(DJ_OPTIM_ADAM);
    CHECK_OK(dj_optim_create(&opt, &oc, refs, (size_t)k));
    free(refs);
    const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.5f, 0.5f, 0.5f};
    dj_tensor x, dlogits;
    CHECK_OK(dj_tensor_alloc(&x, B, 32, 32, 3));
    CHECK_OK(dj_tensor_alloc(&dlogits, B, 1, 1, 10));
    int32_t order[500], labels[50];
    float probs[500];
    float first_loss = 0, loss = 0;
    for (int e = 0; e < EPOCHS && g && opt; e++) {
        dj_cifar10_epoch_order(&rng, order, N);
        for (int b = 0; b < N; b += B) {
            const dj_tensor *logits;
            CHECK_OK(dj_cifar10_batch(&ds, order + b, B, NULL, &rng, mean, sd, &x, labels));
            dj_graph_zero_grad(g);
            CHECK_OK(dj_graph_forward(g, &x, 1, &rng, &logits));
            CHECK_OK(dj_softmax_ce_forward(logits, labels, probs, &loss));
            if (e == 0 && b == 0) first_loss = loss;
            CHECK_OK(dj_softmax_ce_backward(probs, labels, 1.0f, &dlogits, 0));
            CHECK_OK(dj_graph_backward(g, &dlogits, NULL));
            float lr = e < 30 ? 3e-3f : 3e-4f;
            CHECK_OK(dj_optim_step(opt, lr));
        }
    }
    /* training accuracy in inference mode (running BN statistics) */
    int correct = 0;
    for (int b = 0; b < N && g; b += B) {
        const dj_tensor *logits;
        int32_t idx[50];
        for (int i = 0; i < B; i++) idx[i] = b + i;
        CHECK_OK(dj_cifar10_batch(&ds, idx, B, NULL, &rng, mean, sd, &x, labels));
        CHECK_OK(dj_graph_forward(g, &x, 0, NULL, &logits));
        for (int i = 0; i < B; i++) {
            int best = 0;
            for (int c = 1; c < 10; c++)
                if (logits->data[i * 10 + c] > logits->data[i * 10 + best]) best = c;
            correct += best == labels[i];
        }
    }
    double acc = (double)correct / N;
    printf("overfit 500 images: first loss %.3f, last loss %.4f, training accuracy %.1f%%\n", first_loss, loss,
           100 * acc);
    CHECK(first_loss > 1.8f); /* started from chance (ln 10 = 2.30) */
    CHECK(acc >= 0.98);
    dj_tensor_free(&x);
    dj_tensor_free(&dlogits);
    dj_optim_destroy(opt);
    dj_graph_destroy(g);
    dj_cifar10_free(&ds);
}

int main(void) {
    dj_set_num_threads(0);
    RUN(test_overfit_500);
    return check_report("test_train_e2e");
}
