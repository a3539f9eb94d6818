/* The learning-rate schedule and Adam's bias corrections (src/optim/), and the optimizer
 * table's moment counts and defaults, against
 * values worked out independently: literals computed in float64 outside dlfs (the
 * formula of include/dlfs/optim.h written out in Python, printed with repr), or the
 * arithmetic written out here. The configuration comes from parsed command lines
 * through dlfs_options_optim, so --lr-scaling is checked where it happens. */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include "dlfs/optim.h"
#include "dlfs/options.h"
#include "testutil.h"

/* Parse "dlfs-train LINE"; the strings live in a static ring (options point into argv). */
static struct dlfs_options parse_(const char *line)
{
    static char ring[4][512];
    static int next;
    char *buf = ring[next++ % 4], *argv[40];
    int argc = 0;
    snprintf(buf, sizeof ring[0], "dlfs-train --data x.h5 %s", line);
    for (char *t = strtok(buf, " "); t && argc < 39; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    struct dlfs_options o;
    bool exit_now = false;
    dlfs_error_clear();
    const enum dlfs_status st = dlfs_options_parse(&o, argc, argv, 1, &exit_now);
    CHECK(st == DLFS_OK && !exit_now, "'%s' does not parse: %s", line, dlfs_error_msg());
    return o;
}

/* The config of `line` with global batch B and a schedule length of `total` steps
 * (the trainer sets total_steps when it plans the run). */
static struct dlfs_optim_config cfg_(const char *line, int B, long total)
{
    const struct dlfs_options o = parse_(line);
    struct dlfs_optim_config c = dlfs_options_optim(&o, B);
    c.total_steps = total;
    return c;
}

/* |got - want| <= 1e-12 relative (cos() may differ in the last bit between libms) */
static void lr_is_(const char *what, const struct dlfs_optim_config *c, long step, double want)
{
    const double got = dlfs_optim_lr(c, step);
    CHECK(fabs(got - want) <= 1e-12 * fabs(want) + 1e-300, "%s: lr(step %ld) = %.17g, want %.17g", what, step, got,
          want);
}

static void test_constant(void)
{
    const struct dlfs_optim_config c = cfg_("--optim sgd --lr 0.05", 128, 100);
    CHECK(c.schedule == DLFS_SCHED_CONSTANT && c.lr == 0.05 && c.warmup == 0, "constant config");
    const long steps[] = {0, 1, 57, 99, 100, 5000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        CHECK(dlfs_optim_lr(&c, steps[i]) == 0.05, "constant: lr(step %ld) = %.17g", steps[i],
              dlfs_optim_lr(&c, steps[i]));
}

static void test_cosine(void)
{
    /* lr 0.1 over 10 steps: 0.1 * (1 + cos(pi * s / 10)) / 2 */
    const struct dlfs_optim_config c = cfg_("--optim sgd --lr 0.1 --schedule cosine", 128, 10);
    lr_is_("cosine start", &c, 0, 0.1);
    lr_is_("cosine step 1", &c, 1, 0.09755282581475769);
    lr_is_("cosine half-way", &c, 5, 0.05);
    lr_is_("cosine last step", &c, 9, 0.0024471741852423235); /* the metrics' 0.00244717 */
    CHECK(dlfs_optim_lr(&c, 10) == 0.0, "cosine end: %.17g", dlfs_optim_lr(&c, 10));
    CHECK(dlfs_optim_lr(&c, 25) == 0.0, "past the end it stays at the end: %.17g", dlfs_optim_lr(&c, 25));
    /* thirds of a 12-step schedule: (1 + cos(pi/3)) / 2 = 3/4, (1 + cos(2pi/3)) / 2 = 1/4 */
    const struct dlfs_optim_config t = cfg_("--optim sgd --lr 0.1 --schedule cosine", 128, 12);
    lr_is_("cosine a third", &t, 4, 0.1 * 3.0 / 4.0);
    lr_is_("cosine two thirds", &t, 8, 0.1 * 1.0 / 4.0);
    /* monotone, and strictly inside (0, lr) between the ends */
    for (long s = 1; s < 10; s++)
        CHECK(dlfs_optim_lr(&c, s) < dlfs_optim_lr(&c, s - 1) && dlfs_optim_lr(&c, s) > 0, "cosine falls at %ld", s);
}

static void test_lr_min(void)
{
    /* lr_min + (lr - lr_min) * (1 + cos(pi t)) / 2 with lr 0.1, lr_min 0.01 */
    const struct dlfs_optim_config c = cfg_("--optim sgd --lr 0.1 --schedule cosine --lr-min 0.01", 128, 10);
    CHECK(c.lr_min == 0.01, "lr_min %g", c.lr_min);
    lr_is_("lr-min start", &c, 0, 0.1);
    lr_is_("lr-min half-way", &c, 5, 0.01 + 0.09 / 2.0);
    lr_is_("lr-min last step", &c, 9, 0.012202456766718092);
    lr_is_("lr-min end", &c, 10, 0.01);
    lr_is_("lr-min past the end", &c, 40, 0.01);
    /* --lr-min has no say in a constant schedule */
    const struct dlfs_optim_config k = cfg_("--optim sgd --lr 0.1 --lr-min 0.01", 128, 10);
    lr_is_("lr-min, constant", &k, 9, 0.1);
}

static void test_warmup(void)
{
    /* warm-up over 4 steps: lr * (s + 1) / 4, then the schedule */
    const struct dlfs_optim_config c = cfg_("--optim sgd --lr 0.1 --warmup 4", 128, 100);
    const double want[] = {0.1 * 1 / 4, 0.1 * 2 / 4, 0.1 * 3 / 4, 0.1, 0.1, 0.1};
    for (long s = 0; s < 6; s++) lr_is_("warm-up, constant", &c, s, want[s]);
    /* warm-up 4, then cosine over the remaining 10 steps of 14 */
    const struct dlfs_optim_config w = cfg_("--optim sgd --lr 0.1 --warmup 4 --schedule cosine", 128, 14);
    for (long s = 0; s < 4; s++) lr_is_("warm-up before cosine", &w, s, 0.1 * (double)(s + 1) / 4.0);
    lr_is_("cosine after warm-up, start", &w, 4, 0.1);
    lr_is_("cosine after warm-up, step 1", &w, 5, 0.09755282581475769);
    lr_is_("cosine after warm-up, half-way", &w, 9, 0.05);
    lr_is_("cosine after warm-up, last", &w, 13, 0.0024471741852423235);
    CHECK(dlfs_optim_lr(&w, 14) == 0.0, "cosine after warm-up, end: %.17g", dlfs_optim_lr(&w, 14));
    /* a warm-up as long as the run: the schedule never starts; t = 1 after it */
    const struct dlfs_optim_config l = cfg_("--optim sgd --lr 0.1 --warmup 10 --schedule cosine", 128, 10);
    lr_is_("warm-up = run, step 9", &l, 9, 0.1);
    CHECK(dlfs_optim_lr(&l, 10) == 0.0, "warm-up = run, after it: %.17g", dlfs_optim_lr(&l, 10));
}

static void test_linear_scaling(void)
{
    /* --lr-scaling linear: lr * B / --lr-ref-batch, in dlfs_optim_config */
    struct dlfs_optim_config c = cfg_("--optim sgd --lr 0.1 --lr-scaling linear --lr-ref-batch 128", 512, 10);
    lr_is_("linear, B 512, ref 128", &c, 3, 0.4);
    c = cfg_("--optim sgd --lr 0.1 --lr-scaling linear --lr-ref-batch 128", 64, 10);
    lr_is_("linear, B 64, ref 128", &c, 3, 0.05);
    c = cfg_("--optim sgd --lr 0.1 --lr-scaling linear", 1024, 10); /* default ref batch 128 */
    lr_is_("linear, B 1024, default ref", &c, 0, 0.8);
    c = cfg_("--optim sgd --lr 0.1", 1024, 10);
    lr_is_("no scaling, B 1024", &c, 0, 0.1);
    /* scaled rate under warm-up and cosine: 0.4 * 1/2 at step 0; 0.4 * (1 + cos(pi/4)) / 2 at step 3 */
    c = cfg_("--optim sgd --lr 0.1 --lr-scaling linear --warmup 2 --schedule cosine", 512, 6);
    lr_is_("linear + warm-up", &c, 0, 0.2);
    lr_is_("linear + cosine", &c, 3, 0.3414213562373095);
    /* Adam's default lr scales too */
    c = cfg_("--optim adam --lr-scaling linear --lr-ref-batch 256", 512, 10);
    lr_is_("linear, adam default lr", &c, 0, 2e-3);
}

/* A resumed run builds its configuration again and continues at step s: the rate of
 * every step is that of the uninterrupted run, whatever was evaluated before. */
static void test_resume(void)
{
    const char *line = "--optim sgd --lr 0.1 --warmup 3 --schedule cosine --lr-min 0.001";
    const long total = 40;
    const struct dlfs_optim_config a = cfg_(line, 128, total);
    double straight[40];
    for (long s = 0; s < total; s++) straight[s] = dlfs_optim_lr(&a, s);
    for (long start = 1; start < total; start += 7) {
        const struct dlfs_optim_config b = cfg_(line, 128, total); /* the resumed process */
        for (long s = start; s < total; s++)
            CHECK(memcmp(&(double){dlfs_optim_lr(&b, s)}, &straight[s], sizeof(double)) == 0,
                  "resumed at %ld: step %ld gives %.17g, straight %.17g", start, s, dlfs_optim_lr(&b, s), straight[s]);
    }
    /* evaluated backwards, or one step many times: no state kept between calls */
    for (long s = total - 1; s >= 0; s--) {
        const double x = dlfs_optim_lr(&a, s), y = dlfs_optim_lr(&a, s);
        CHECK(x == straight[s] && y == straight[s], "step %ld evaluated again: %.17g", s, x);
    }
    /* and the values themselves: warm-up, the cosine from step 3 over 37 steps, the end */
    lr_is_("resume: warm-up", &a, 1, 0.1 * 2.0 / 3.0);
    lr_is_("resume: cosine start", &a, 3, 0.1);
    lr_is_("resume: end", &a, total, 0.001);
}

/* Adam's bias corrections 1 - beta^(step + 1) (step 0-based), as floats */
static void test_bias_corrections(void)
{
    const struct dlfs_optim_config c = cfg_("--optim adam --lr 0.001 --beta1 0.9 --beta2 0.999", 128, 100);
    struct dlfs_optimizer op;
    memset(&op, 0, sizeof op);
    op.cfg = c;
    const struct { long step; double c1, c2; } want[] = {
        {0, 0.09999999999999998, 0.0010000000000000009},          /* 1 - 0.9, 1 - 0.999 */
        {1, 0.18999999999999995, 0.001998999999999973},           /* 1 - 0.9^2, 1 - 0.999^2 */
        {9, 0.6513215599, 0.009955119790251765},                  /* 1 - 0.9^10, 1 - 0.999^10 */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct dlfs_optim_hp hp = dlfs_optim_hp(&op, want[i].step);
        CHECK(hp.bias_c1 == (float)want[i].c1, "bias_c1 at step %ld: %.9g, want %.9g", want[i].step,
              (double)hp.bias_c1, want[i].c1);
        CHECK(hp.bias_c2 == (float)want[i].c2, "bias_c2 at step %ld: %.9g, want %.9g", want[i].step,
              (double)hp.bias_c2, want[i].c2);
        CHECK(hp.lr == (float)0.001 && hp.beta1 == 0.9f && hp.beta2 == 0.999f && !hp.decoupled, "hp at step %ld",
              want[i].step);
        const struct dlfs_optim_dyn d = dlfs_optim_dyn(&op, want[i].step);
        CHECK(d.lr == hp.lr && d.bias_c1 == hp.bias_c1 && d.bias_c2 == hp.bias_c2, "dyn = hp at step %ld",
              want[i].step);
    }
    /* the hp carries the schedule's rate */
    op.cfg = cfg_("--optim adamw --lr 0.1 --schedule cosine", 128, 10);
    CHECK(dlfs_optim_hp(&op, 9).lr == (float)0.0024471741852423235 && dlfs_optim_hp(&op, 9).decoupled,
          "adamw hp at step 9: lr %.9g", (double)dlfs_optim_hp(&op, 9).lr);
}

/* The optimizer table against what each optimizer is by definition: SGD keeps no
 * moment, or its momentum buffer with --momentum > 0; Adam and AdamW keep two
 * (m, v). The state an optimizer allocates, the range a checkpoint may hold, the
 * defaults and rules the options take from the table, and the look-up by name. */
static void test_table(void)
{
    static const struct { const char *line; int moments, lo, hi; double lr, wd; } want[] = {
        {"--optim sgd --momentum 0", 0, 0, 1, 0.05, 0.0},
        {"--optim sgd --momentum 0.9 --nesterov", 1, 0, 1, 0.05, 0.0},
        {"--optim adam", 2, 2, 2, 1e-3, 0.0},
        {"--optim adamw", 2, 2, 2, 1e-3, 0.01},
    };
    const size_t n = 37;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct dlfs_options o = parse_(want[i].line);
        const struct dlfs_optim_config c = dlfs_options_optim(&o, 128);
        struct dlfs_optimizer op;
        CHECK(dlfs_optim_init(&op, &c, dlfs_backend_cpu(), n, NULL) == DLFS_OK, "%s: init", want[i].line);
        CHECK(dlfs_optim_state_bytes(&op) == want[i].moments * n * sizeof(float), "%s: %zu bytes of state, want %d "
              "moments of %zu floats", want[i].line, dlfs_optim_state_bytes(&op), want[i].moments, n);
        const struct dlfs_optim_desc *d = dlfs_optim_desc(o.optim);
        CHECK(d->moments_min == want[i].lo && d->moments_max == want[i].hi && d->moments(&c) == want[i].moments,
              "%s: moments %d..%d (%d), want %d..%d (%d)", want[i].line, d->moments_min, d->moments_max,
              d->moments(&c), want[i].lo, want[i].hi, want[i].moments);
        CHECK(o.lr == want[i].lr && o.weight_decay == want[i].wd, "%s: default lr %g wd %g", want[i].line, o.lr,
              o.weight_decay);
        CHECK(dlfs_optim_find(dlfs_optim_name(o.optim)) == d, "%s: found by its name", want[i].line);
        dlfs_optim_free(&op);
    }
    CHECK(!dlfs_optim_find("Adam") && !dlfs_optim_find("") && !dlfs_optim_find(NULL), "unknown names found");
    CHECK(DLFS_OPTIM_COUNT == 3 && !strcmp(dlfs_optim_name(DLFS_OPTIM_COUNT), "?"), "the table's end");
    const char *argv[] = {"dlfs-train", "--data", "x.h5", "--optim", "adam", "--nesterov", NULL};
    struct dlfs_options o;
    bool exit_now = false;
    dlfs_error_clear();
    CHECK(dlfs_options_parse(&o, 6, (char **)argv, 1, &exit_now) == DLFS_ERR_USAGE &&
          strstr(dlfs_error_msg(), "--nesterov applies to --optim sgd only"), "adam --nesterov: %s", dlfs_error_msg());
}

int main(void)
{
    test_constant();
    test_cosine();
    test_lr_min();
    test_warmup();
    test_linear_scaling();
    test_resume();
    test_bias_corrections();
    test_table();
    T_DONE();
}
