/* The training-step pipeline's backend entries (backend/cpu/data.c, backend/cuda/data.cu,
 * graph.cu):
 *
 *   gather_u8        rows of a resident uint8 dataset, normalised: bit-identical to
 *                    the staged path (rows copied on the host, normalize_u8 on the
 *                    CPU), labels exact, nothing written outside (sentinels)
 *   pinned_alloc     pinned staging + to_device_async: the bytes arrive
 *   graph_*          a recorded [gemm, bias_act_fwd, axpy, scale] replayed three
 *                    times gives the bits of issuing the ops three times
 *   *_update_dev     SGD / Adam / AdamW with lr and bias corrections read from
 *                    backend memory: the bits of the by-value entries, eagerly and
 *                    recorded once in a graph replayed with new values each step
 *   to_host_async    + mark_record / mark_wait: the bytes land in pinned memory
 *
 *   test_pipeline_ops          the backend under test is CUDA (exit 77 without a GPU)
 *   test_pipeline_ops --self   the CPU backend (runs anywhere: its gather_u8, and
 *                              that the optional entries are absent there)
 */
#include <stdint.h>
#include <string.h>
#include "dlfs/backend.h"
#include "dlfs/dataset.h" /* DLFS_MAX_CHANNELS */
#include "testutil.h"

static const struct dlfs_backend *ref_, *dev_;
static unsigned long long seed_ = 77;

static void test_gather(int n, int ch, size_t plane, int rows)
{
    const size_t dim = (size_t)ch * plane, G = 16;
    uint8_t *img = malloc((size_t)n * dim), *lab = malloc((size_t)n);
    uint32_t *idx = malloc((size_t)rows * sizeof *idx);
    for (size_t i = 0; i < (size_t)n * dim; i++) img[i] = (uint8_t)((i * 2654435761u) >> 11);
    for (int i = 0; i < n; i++) lab[i] = (uint8_t)((i * 7 + 3) % 251);
    for (int i = 0; i < rows; i++) idx[i] = (uint32_t)((t_rand_(&seed_) + 1.0) * 0.5 * n) % (uint32_t)n; /* repeats too */
    idx[0] = (uint32_t)n - 1; /* the last image: reads end exactly at the end */
    double mean[DLFS_MAX_CHANNELS], std[DLFS_MAX_CHANNELS];
    for (int c = 0; c < DLFS_MAX_CHANNELS; c++) { mean[c] = 0.13 + 0.04 * c; std[c] = 0.31 - 0.01 * c; }

    /* reference: the staged path on the CPU */
    uint8_t *rows_u8 = malloc((size_t)rows * dim);
    float *want = malloc((size_t)rows * dim * sizeof *want);
    for (int i = 0; i < rows; i++) memcpy(rows_u8 + i * dim, img + (size_t)idx[i] * dim, dim);
    ref_->normalize_u8(want, rows_u8, (size_t)rows, ch, plane, mean, std);

    /* under test: everything in the backend's memory, outputs between sentinels */
    uint8_t *d_img = dev_->alloc((size_t)n * dim), *d_lab = dev_->alloc((size_t)n);
    uint32_t *d_idx = dev_->alloc((size_t)rows * sizeof *idx);
    float *d_x = dev_->alloc(((size_t)rows * dim + 2 * G) * sizeof(float));
    int32_t *d_y = dev_->alloc(((size_t)rows + 2 * G) * sizeof(int32_t));
    float *hx = malloc(((size_t)rows * dim + 2 * G) * sizeof *hx);
    int32_t *hy = malloc(((size_t)rows + 2 * G) * sizeof *hy);
    for (size_t i = 0; i < (size_t)rows * dim + 2 * G; i++) hx[i] = T_SENTINEL;
    for (size_t i = 0; i < (size_t)rows + 2 * G; i++) hy[i] = -7;
    dev_->to_device(d_x, hx, ((size_t)rows * dim + 2 * G) * sizeof *hx);
    dev_->to_device(d_y, hy, ((size_t)rows + 2 * G) * sizeof *hy);
    dev_->to_device(d_img, img, (size_t)n * dim);
    dev_->to_device(d_lab, lab, (size_t)n);
    dev_->to_device(d_idx, idx, (size_t)rows * sizeof *idx);
    dev_->gather_u8(d_x + G, d_y + G, d_img, d_lab, d_idx, rows, ch, plane, mean, std);
    dev_->to_host(hx, d_x, ((size_t)rows * dim + 2 * G) * sizeof *hx);
    dev_->to_host(hy, d_y, ((size_t)rows + 2 * G) * sizeof *hy);

    size_t bad = 0, badl = 0, outside = 0;
    for (size_t i = 0; i < (size_t)rows * dim; i++)
        if (memcmp(&hx[G + i], &want[i], sizeof(float)) != 0 && bad++ < 5)
            fprintf(stderr, "  gather x[%zu]: got %.9g, staged %.9g\n", i, hx[G + i], want[i]);
    for (int i = 0; i < rows; i++)
        if (hy[G + i] != lab[idx[i]] && badl++ < 5)
            fprintf(stderr, "  gather label[%d]: got %d, want %d\n", i, hy[G + i], lab[idx[i]]);
    for (size_t i = 0; i < G; i++) {
        outside += hx[i] != T_SENTINEL || hx[G + (size_t)rows * dim + i] != T_SENTINEL;
        outside += hy[i] != -7 || hy[G + rows + i] != -7;
    }
    CHECK(!bad && !badl && !outside, "gather_u8 %dx%dx%zu, %d rows: %zu values, %zu labels differ, %zu sentinels hit",
          n, ch, plane, rows, bad, badl, outside);
    if (!bad && !badl && !outside)
        printf("  ok  gather_u8 %s %dx%dx%zu, %d rows: bit-identical to the staged path\n", dev_->name, n, ch, plane,
               rows);
    dev_->free(d_img); dev_->free(d_lab); dev_->free(d_idx); dev_->free(d_x); dev_->free(d_y);
    free(img); free(lab); free(idx); free(rows_u8); free(want); free(hx); free(hy);
}

static void test_pinned(void)
{
    if (!dev_->pinned_alloc) {
        CHECK(dev_->host_memory, "%s: device memory but no pinned staging", dev_->name);
        return;
    }
    const size_t n = 1 << 20;
    uint8_t *h = dev_->pinned_alloc(n), *back = malloc(n);
    CHECK(h != NULL, "pinned_alloc of 1 MiB");
    if (!h) return;
    for (size_t i = 0; i < n; i++) h[i] = (uint8_t)(i * 31 + 7);
    uint8_t *d = dev_->alloc(n);
    CHECK(dev_->to_device_async != NULL, "pinned staging without to_device_async");
    dev_->to_device_async(d, h, n);
    dev_->sync();
    dev_->to_host(back, d, n);
    CHECK(memcmp(h, back, n) == 0, "to_device_async from pinned memory: bytes differ");
    CHECK(dev_->mem_free && dev_->mem_free() > 0, "mem_free");
    printf("  ok  pinned_alloc + to_device_async (1 MiB)\n");
    dev_->free(d);
    dev_->pinned_free(h);
    free(back);
}

/* the recorded sequence: z = x w^T, bias + relu, a += 0.5 z, a *= 0.75 */
static void seq_(const float *x, const float *w, const float *b, float *z, float *a, int m, int n, int k)
{
    dev_->gemm(false, true, m, n, k, 1.0f, x, k, w, k, 0.0f, z, n);
    dev_->bias_act_fwd(z, z, b, m, n, DLFS_ACT_NONE);
    dev_->axpy((size_t)m * n, 0.5f, z, a);
    dev_->scale((size_t)m * n, 0.75f, a);
}

static void test_graph(void)
{
    if (!dev_->graph_begin) {
        CHECK(!dev_->graph_end && !dev_->graph_launch && !dev_->graph_free, "%s: graph entries half there",
              dev_->name);
        printf("  ok  %s backend: no graphs (entries NULL)\n", dev_->name);
        return;
    }
    const int m = 128, n = 512, k = 784;
    float *hx = t_rand_floats_(&seed_, (size_t)m * k, 1), *hw = t_rand_floats_(&seed_, (size_t)n * k, 0.05);
    float *hb = t_rand_floats_(&seed_, (size_t)n, 0.1);
    float *x = t_upload_(dev_, hx, (size_t)m * k), *w = t_upload_(dev_, hw, (size_t)n * k);
    float *b = t_upload_(dev_, hb, (size_t)n);
    float *z1 = dev_->alloc((size_t)m * n * 4), *a1 = dev_->alloc((size_t)m * n * 4);
    float *z2 = dev_->alloc((size_t)m * n * 4), *a2 = dev_->alloc((size_t)m * n * 4);
    for (int i = 0; i < 3; i++) seq_(x, w, b, z1, a1, m, n, k); /* eager (and the warm-up) */
    dev_->sync();
    CHECK(dev_->graph_begin() == 0, "graph_begin");
    seq_(x, w, b, z2, a2, m, n, k);
    void *g = dev_->graph_end();
    CHECK(g != NULL, "graph_end: the recording failed");
    if (g) {
        float *h1 = malloc((size_t)m * n * 4), *h2 = malloc((size_t)m * n * 4);
        dev_->to_host(h2, a2, (size_t)m * n * 4);
        int untouched = 1;
        for (size_t i = 0; i < (size_t)m * n; i++) untouched &= h2[i] == 0.0f;
        CHECK(untouched, "recording ran the ops");
        for (int i = 0; i < 3; i++) dev_->graph_launch(g);
        dev_->to_host(h1, a1, (size_t)m * n * 4);
        dev_->to_host(h2, a2, (size_t)m * n * 4);
        CHECK(memcmp(h1, h2, (size_t)m * n * 4) == 0, "3 replays differ from 3 eager runs");
        printf("  ok  graph of gemm+bias+axpy+scale: 3 replays == 3 eager runs, bit for bit\n");
        dev_->graph_free(g);
        free(h1); free(h2);
    }
    dev_->free(x); dev_->free(w); dev_->free(b);
    dev_->free(z1); dev_->free(a1); dev_->free(z2); dev_->free(a2);
    free(hx); free(hw); free(hb);
}

/* Five steps of an update, changing lr and bias corrections per step as the
 * trainer does, by value (p1) and through *_update_dev (p2; `graph`: recorded
 * once, replayed). n odd and a slab offset by one float: the float4 part, the
 * tail and the scalar path. Bits must agree. (long: one block per optimizer path) */
static void test_update_dev(int optim, int graph) /* 0 sgd+momentum, 1 sgd nesterov, 2 adam, 3 adamw */
{
    static const char *names[] = {"sgd momentum", "sgd nesterov", "adam", "adamw"};
    if (!dev_->adam_update_dev || !dev_->sgd_update_dev) {
        CHECK(!dev_->adam_update_dev && !dev_->sgd_update_dev, "%s: one of the *_update_dev entries", dev_->name);
        return;
    }
    if (graph && !dev_->graph_begin) return;
    const size_t N = 100003;
    for (int off = 0; off < 2; off++) {
        const size_t n = N - (size_t)off;
        float *hp0 = t_rand_floats_(&seed_, N, 1), *hg = t_rand_floats_(&seed_, N, 0.1);
        float *p[2], *g = t_upload_(dev_, hg, N), *m[2], *v[2];
        for (int j = 0; j < 2; j++) {
            p[j] = t_upload_(dev_, hp0, N);
            m[j] = dev_->alloc(N * sizeof(float));
            v[j] = dev_->alloc(N * sizeof(float));
        }
        struct dlfs_optim_dyn *dyn = dev_->alloc(sizeof *dyn);
        struct dlfs_optim_hp hp = {.momentum = 0.9f, .nesterov = optim == 1, .beta1 = 0.9f, .beta2 = 0.999f,
                                   .eps = 1e-8f, .weight_decay = 0.01f, .decoupled = optim == 3};
        void *rec = NULL;
        for (int t = 0; t < 5; t++) {
            hp.lr = 0.001f * (float)(t + 1) / 3.0f;
            hp.bias_c1 = (float)(1.0 - pow(0.9, t + 1));
            hp.bias_c2 = (float)(1.0 - pow(0.999, t + 1));
            const struct dlfs_optim_dyn d = {hp.lr, hp.bias_c1, hp.bias_c2, 0.0f};
            if (optim < 2) dev_->sgd_update(n, p[0] + off, g + off, m[0] + off, &hp);
            else dev_->adam_update(n, p[0] + off, g + off, m[0] + off, v[0] + off, &hp);
            dev_->to_device(dyn, &d, sizeof d);
            struct dlfs_optim_hp junk = hp; /* what *_dev must not use */
            junk.lr = 7.0f;
            junk.bias_c1 = junk.bias_c2 = 0.5f;
            if (graph && !rec) {
                CHECK(dev_->graph_begin() == 0, "graph_begin");
            }
            if (!graph || !rec) {
                if (optim < 2) dev_->sgd_update_dev(n, p[1] + off, g + off, m[1] + off, &junk, dyn);
                else dev_->adam_update_dev(n, p[1] + off, g + off, m[1] + off, v[1] + off, &junk, dyn);
            }
            if (graph && !rec) {
                rec = dev_->graph_end();
                CHECK(rec != NULL, "graph_end: the recording failed");
                if (!rec) break;
            }
            if (rec) dev_->graph_launch(rec);
        }
        float *h[2] = {malloc(N * sizeof(float)), malloc(N * sizeof(float))};
        size_t bad = 0;
        float *bufs[3][2] = {{p[0], p[1]}, {m[0], m[1]}, {v[0], v[1]}};
        for (int b = 0; b < 3; b++) {
            dev_->to_host(h[0], bufs[b][0], N * sizeof(float));
            dev_->to_host(h[1], bufs[b][1], N * sizeof(float));
            for (size_t i = 0; i < N; i++) bad += memcmp(&h[0][i], &h[1][i], sizeof(float)) != 0;
        }
        dev_->to_host(h[0], p[1], N * sizeof(float));
        size_t moved = 0;
        for (size_t i = (size_t)off; i < N; i++) moved += h[0][i] != hp0[i];
        CHECK(bad == 0 && moved > N / 2, "%s_update_dev (%s, offset %d): %zu values differ from the by-value entry, "
              "%zu moved", optim < 2 ? "sgd" : "adam", names[optim], off, bad, moved);
        if (!bad) printf("  ok  %s_update_dev, %s%s, offset %d: 5 steps == by value, bit for bit\n",
                         optim < 2 ? "sgd" : "adam", names[optim], graph ? " (recorded once, replayed)" : "", off);
        if (rec) dev_->graph_free(rec);
        for (int j = 0; j < 2; j++) { dev_->free(p[j]); dev_->free(m[j]); dev_->free(v[j]); free(h[j]); }
        dev_->free(g); dev_->free(dyn);
        free(hp0); free(hg);
    }
}

static void test_to_host_async(void)
{
    const int all = dev_->to_host_async && dev_->mark_record && dev_->mark_wait;
    if (!all) {
        CHECK(!dev_->to_host_async && !dev_->mark_record && !dev_->mark_wait, "%s: async entries half there",
              dev_->name);
        printf("  ok  %s backend: no to_host_async / marks (entries NULL)\n", dev_->name);
        return;
    }
    CHECK(dev_->pinned_alloc != NULL, "to_host_async without pinned_alloc");
    const size_t n = 4096;
    double *h = dev_->pinned_alloc(2 * n * sizeof(double));
    double *d = dev_->alloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) h[n + i] = (double)i * 0.25 - 3.0;
    dev_->to_device(d, h + n, n * sizeof(double));
    dev_->mark_wait(DLFS_MARKS - 1); /* never recorded (in this test): returns */
    for (int k = 0; k < DLFS_MARKS; k++) {
        memset(h, 0, n * sizeof(double));
        dev_->to_host_async(h, d, n * sizeof(double));
        dev_->mark_record(k);
        dev_->mark_wait(k);
        CHECK(memcmp(h, h + n, n * sizeof(double)) == 0, "to_host_async + mark %d: bytes differ", k);
    }
    printf("  ok  to_host_async + mark_record/mark_wait (%d marks)\n", DLFS_MARKS);
    dev_->free(d);
    dev_->pinned_free(h);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    ref_ = dlfs_backend_cpu();
    int self = 0;
    const int rc = t_device_backend_(argc, argv, &dev_, &self);
    if (rc) return rc;
    test_gather(1000, 1, 784, 128);
    test_gather(300, 3, 1024, 77);
    test_gather(50, 16, 5, 33);
    test_gather(7, 2, 1, 1);
    test_pinned();
    test_graph();
    for (int optim = 0; optim < 4; optim++) {
        test_update_dev(optim, 0);
        test_update_dev(optim, 1);
    }
    test_to_host_async();
    T_DONE();
}
