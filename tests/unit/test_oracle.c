/* Mechanisms against an independent oracle, not against themselves:
 *  - the epoch sampler's distribution: chi-square bounds over many epochs;
 *  - augmentation geometry: each augmented image matched pixel by pixel against
 *    the (shift, mirror) candidates worked out here, and the recovered draws'
 *    distribution against a chi-square bound;
 *  - batch norm's statistics for the running buffers: mean and unbiased variance by hand;
 *  - option ranges at their exact boundaries, driven by the options table itself.
 *
 * Chi-square bounds: the critical value for a false-alarm probability of 1e-6
 * (Wilson-Hilferty's approximation, z = 4.753). The seeds are fixed, so the
 * test is deterministic; the 1e-6 says how unlikely a correct shuffle would be
 * to fail with any other seed set. */
#include <float.h>
#include <stdint.h>
#include <string.h>
#include "dlfs/options.h"
#include "dlfs/sampler.h"
#include "dlfs/util.h"
#include "train/batcher.h"
#include "testutil.h"

/* upper critical value of chi-square with df degrees of freedom, alpha = 1e-6 */
static double chi2_crit_(int df)
{
    const double z = 4.7534243, k = 2.0 / (9.0 * df), t = 1.0 - k + z * sqrt(k);
    return df * t * t * t;
}

static double chi2_(const long *count, int cells, double expected)
{
    double x = 0;
    for (int i = 0; i < cells; i++) x += (count[i] - expected) * (count[i] - expected) / expected;
    return x;
}

/* ---- the epoch sampler ---------------------------------------------------------- */

/* n = 4: all 24 permutations equally often over 48000 epochs (2000 each). A
 * naive shuffle (j drawn from all n, not from i) gives 256 equally likely
 * paths onto 24 permutations: some 8/256, some 11/256 — caught here. */
static void sampler_perms_(uint64_t seed)
{
    enum { N = 4, CELLS = 24, EPOCHS = 48000 };
    long count[CELLS] = {0};
    for (int e = 0; e < EPOCHS; e++) {
        uint32_t p[N];
        dlfs_sampler_permutation(seed, e, p, N);
        int code = 0, used = 0; /* Lehmer code: rank of p among the 24 */
        for (int i = 0; i < N; i++) {
            int smaller = 0;
            for (uint32_t v = 0; v < p[i]; v++) smaller += !(used >> v & 1);
            used |= 1 << p[i];
            code = code * (N - i) + smaller;
        }
        count[code]++;
    }
    const double x = chi2_(count, CELLS, EPOCHS / (double)CELLS), crit = chi2_crit_(CELLS - 1);
    CHECK(x < crit, "seed %llu: the 24 permutations of 4 are not uniform: chi2 %.1f > %.1f (df 23)",
          (unsigned long long)seed, x, crit);
}

/* n = 10 over 20000 epochs: (sample, position) — each sample at each position
 * 2000 times (df 81), and the ordered pair at positions (0, 1) — each of the 90
 * pairs 222.2 times (df 89). */
static void sampler_positions_(uint64_t seed)
{
    enum { N = 10, EPOCHS = 20000 };
    static long pos[N * N], pair[N * N];
    memset(pos, 0, sizeof pos), memset(pair, 0, sizeof pair);
    for (int e = 0; e < EPOCHS; e++) {
        uint32_t p[N];
        dlfs_sampler_permutation(seed, e, p, N);
        for (int i = 0; i < N; i++) pos[p[i] * N + i]++;
        pair[p[0] * N + p[1]]++;
    }
    double x = chi2_(pos, N * N, EPOCHS / (double)N), crit = chi2_crit_((N - 1) * (N - 1));
    CHECK(x < crit, "seed %llu: sample x position not uniform: chi2 %.1f > %.1f (df 81)", (unsigned long long)seed,
          x, crit);
    long off[N * (N - 1)];
    int k = 0;
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            if (a == b) CHECK(pair[a * N + b] == 0, "a sample twice in one permutation");
            else off[k++] = pair[a * N + b];
        }
    x = chi2_(off, k, EPOCHS / (double)k), crit = chi2_crit_(k - 1);
    CHECK(x < crit, "seed %llu: pairs at positions 0,1 not uniform: chi2 %.1f > %.1f (df %d)",
          (unsigned long long)seed, x, crit, k - 1);
}

/* n = 1000 (the size of a real shard of work): 10 sample buckets x 10 position
 * buckets over 400 epochs, 4000 per cell. Within one permutation the cells are
 * hypergeometric (less spread than multinomial), so the bound is conservative. */
static void sampler_buckets_(uint64_t seed)
{
    enum { N = 1000, B = 10, EPOCHS = 400 };
    static uint32_t p[N];
    long cell[B * B] = {0};
    for (int e = 0; e < EPOCHS; e++) {
        dlfs_sampler_permutation(seed, e, p, N);
        for (int i = 0; i < N; i++) cell[(p[i] * B / N) * B + i * B / N]++;
    }
    const double x = chi2_(cell, B * B, (double)EPOCHS * N / (B * B)), crit = chi2_crit_((B - 1) * (B - 1));
    CHECK(x < crit, "seed %llu, n 1000: sample bucket x position bucket: chi2 %.1f > %.1f", (unsigned long long)seed,
          x, crit);
}

static void test_sampler_distribution(void)
{
    /* the bound itself, against the exact quantiles (chi2.isf(1e-6, df) = 70.55 for df 23, 156.45 for
     * df 81): the approximation errs a little high, so the false-alarm rate is at most 1e-6 */
    CHECK(chi2_crit_(23) - 70.55 > 0 && chi2_crit_(23) - 70.55 < 1 && chi2_crit_(81) - 156.45 > 0 &&
          chi2_crit_(81) - 156.45 < 1, "chi2 bound %.2f %.2f", chi2_crit_(23), chi2_crit_(81));
    const uint64_t seeds[] = {1, 2, 12345};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        sampler_perms_(seeds[s]);
        sampler_positions_(seeds[s]);
        sampler_buckets_(seeds[s]);
    }
}

/* ---- augmentation geometry ------------------------------------------------------- */

enum { AC = 2, AH = 5, AW = 6, ADIM = AC * AH * AW };

/* The oracle: mirror left-right (when f), pad with `crop` zeros, take the window
 * at offset (crop + dy, crop + dx). */
static void expect_(const uint8_t *src, int dy, int dx, int f, uint8_t *out)
{
    for (int c = 0; c < AC; c++)
        for (int y = 0; y < AH; y++)
            for (int x = 0; x < AW; x++) {
                const int sy = y + dy, sx = x + dx;
                uint8_t v = 0;
                if (sy >= 0 && sy < AH && sx >= 0 && sx < AW) v = src[(c * AH + sy) * AW + (f ? AW - 1 - sx : sx)];
                out[(c * AH + y) * AW + x] = v;
            }
}

/* Which (dy, dx, f) of [-crop, crop]^2 x {0, 1} gives `img`: the cell index, -1
 * for none, -2 for more than one. */
static int which_(const uint8_t *src, const uint8_t *img, int crop)
{
    int found = -1;
    const int span = 2 * crop + 1;
    for (int f = 0; f < 2; f++)
        for (int dy = -crop; dy <= crop; dy++)
            for (int dx = -crop; dx <= crop; dx++) {
                uint8_t want[ADIM];
                expect_(src, dy, dx, f, want);
                if (memcmp(want, img, ADIM) == 0) {
                    if (found != -1) return -2;
                    found = (f * span + dy + crop) * span + dx + crop;
                }
            }
    return found;
}

static void augment_case_(int crop, bool flip, int n, uint64_t key)
{
    const struct dlfs_assembly a = {.c = AC, .h = AH, .w = AW, .dim = ADIM, .crop = crop, .flip = flip};
    uint8_t *images = malloc((size_t)n * ADIM), *img = malloc((size_t)n * ADIM), *lab = malloc((size_t)n);
    uint32_t *idx = malloc((size_t)n * sizeof *idx);
    int32_t *got_lab = malloc((size_t)n * sizeof *got_lab);
    uint8_t src[ADIM];
    for (int i = 0; i < ADIM; i++) src[i] = (uint8_t)(1 + i); /* every pixel its own value */
    for (int i = 0; i < n; i++) {
        memcpy(images + (size_t)i * ADIM, src, ADIM);
        lab[i] = (uint8_t)(i % 7);
        idx[i] = (uint32_t)(n - 1 - i); /* rows in reverse: the draw follows the sample, not the row */
    }
    const struct dlfs_split split = {.n = (size_t)n, .images = images, .labels = lab};
    dlfs_assemble(&a, &split, idx, n, key, img, got_lab);
    const int span = 2 * crop + 1, cells = 2 * span * span;
    long *count = calloc((size_t)cells, sizeof *count);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const int w = which_(src, img + (size_t)i * ADIM, crop);
        bad += w < 0 || got_lab[i] != lab[idx[i]];
        if (w >= 0) count[w]++;
    }
    CHECK(bad == 0, "crop %d flip %d: %d of %d images are no shift-and-mirror of the sample (or lost the label)",
          crop, flip, bad, n);
    /* the draws: dy, dx uniform on [-crop, crop], independent, mirrored half the time */
    const int used = flip ? cells : cells / 2;
    for (int c = used; c < cells; c++) CHECK(count[c] == 0, "mirrored without --augment-flip");
    const double x = chi2_(count, used, (double)n / used), crit = chi2_crit_(used - 1);
    CHECK(x < crit, "crop %d flip %d: the (dy, dx%s) draws are not uniform: chi2 %.1f > %.1f (df %d)", crop, flip,
          flip ? ", mirror" : "", x, crit, used - 1);
    /* another key (another step or seed): other draws for the same samples, as often as
     * independent draws agree (1/used), within 6 standard deviations */
    uint8_t *img2 = malloc((size_t)n * ADIM);
    dlfs_assemble(&a, &split, idx, n, key + 1, img2, got_lab);
    long same = 0;
    for (int i = 0; i < n; i++)
        same += which_(src, img2 + (size_t)i * ADIM, crop) == which_(src, img + (size_t)i * ADIM, crop);
    const double p = 1.0 / used, lim = n * p + 6 * sqrt(n * p * (1 - p));
    CHECK(used == 1 || same < lim, "crop %d flip %d: another key repeats %ld of %d draws (independent: %.0f)", crop,
          flip, same, n, n * p);
    free(img2);
    /* the same sample in another row, in a batch of one: the same image */
    uint8_t one[ADIM];
    int32_t l1;
    const uint32_t s = idx[3];
    dlfs_assemble(&a, &split, &s, 1, key, one, &l1);
    CHECK(memcmp(one, img + 3 * ADIM, ADIM) == 0, "sample %u: another row, another augmentation", s);
    free(images), free(img), free(lab), free(idx), free(got_lab), free(count);
}

static void test_augment(void)
{
    augment_case_(2, true, 20000, dlfs_key(7, 3, 11));  /* 50 cells, 400 each */
    augment_case_(1, false, 9000, dlfs_key(9, 3, 1));   /* 9 cells, 1000 each */
    augment_case_(0, true, 4000, dlfs_key(5, 3, 2));    /* mirror or not, 2000 each */
    /* the oracle itself, by hand: dy = -1 takes the row above (row 0 becomes zeros) */
    uint8_t s[ADIM], o[ADIM];
    for (int i = 0; i < ADIM; i++) s[i] = (uint8_t)(1 + i);
    expect_(s, -1, 0, 0, o);
    CHECK(o[0] == 0 && o[AW] == 1 && o[AW + 1] == 2, "oracle: shift down");
    expect_(s, 0, 1, 1, o);
    CHECK(o[0] == AW - 1 && o[AW - 1] == 0, "oracle: mirror then shift left");
}

/* ---- batch norm's statistics for the running buffers ------------------------------------ */

/* The training forward adds, per channel, the batch mean and the UNBIASED variance
 * (sum of squares / (count - 1)) to the statistics the running buffers are updated
 * from (src/README.md, Models): worked out here in double from the same values. */
static void test_bn_stats(void)
{
    const struct dlfs_backend *be = dlfs_backend_cpu();
    enum { N = 4, CH = 2, PL = 3, NX = N * CH * PL };
    float x[NX], gamma[CH] = {1, 1}, beta[CH] = {0, 0}, xhat[NX], invstd[CH], z[NX], stats[2 * CH] = {0};
    for (int i = 0; i < NX; i++) x[i] = (float)((i * 7) % 11) - 3.0f + 0.25f * (float)(i % 3);
    be->batchnorm_fwd(N, CH, PL, 0, x, gamma, beta, NULL, NULL, 1e-5f, xhat, invstd, z, z, DLFS_ACT_NONE, stats);
    for (int ch = 0; ch < CH; ch++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < N; i++)
            for (int p = 0; p < PL; p++) s += x[(i * CH + ch) * PL + p];
        const double mean = s / (N * PL);
        for (int i = 0; i < N; i++)
            for (int p = 0; p < PL; p++) s2 += pow(x[(i * CH + ch) * PL + p] - mean, 2);
        const double var_unbiased = s2 / (N * PL - 1), var_biased = s2 / (N * PL);
        CHECK(fabs(stats[ch] - mean) < 1e-5, "channel %d: batch mean %g, want %g", ch, stats[ch], mean);
        CHECK(fabs(stats[CH + ch] - var_unbiased) < 1e-5 * var_unbiased,
              "channel %d: variance for the running buffer %g, want the unbiased %g (biased: %g)", ch,
              stats[CH + ch], var_unbiased, var_biased);
        /* and the normalisation itself uses the biased one */
        CHECK(fabs(invstd[ch] - 1.0 / sqrt(var_biased + 1e-5)) < 1e-5 / sqrt(var_biased),
              "channel %d: 1/std %g, want 1/sqrt(biased var + eps) %g", ch, invstd[ch], 1.0 / sqrt(var_biased + 1e-5));
    }
}

/* ---- option ranges at their boundaries --------------------------------------------- */

struct range_ {
    const char *name;
    enum dlfs_opt_kind kind;
    size_t off, size;
    double lo, hi;
};
#define RANGE_(field, type, kind, name, arg, def, lo, hi, ...) \
    {name, kind, offsetof(struct dlfs_options, field), sizeof(type), (double)(lo), (double)(hi)},
static const struct range_ ranges_[] = {DLFS_OPTIONS(RANGE_, DLFS_OPT_NONE_)};

/* dlfs-train --data x.h5 --NAME VAL [EXTRA...]: EXTRA is a space-separated option list */
static enum dlfs_status parse_(struct dlfs_options *o, const char *name, const char *val, const char *extra)
{
    static char opt[64], v[64], ex[64];
    snprintf(opt, sizeof opt, "--%s", name);
    snprintf(v, sizeof v, "%s", val);
    snprintf(ex, sizeof ex, "%s", extra);
    char *argv[12] = {"dlfs-train", "--data", "x.h5", opt, v};
    int argc = 5;
    for (char *t = strtok(ex, " "); t && argc < 11; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    bool exit_now;
    dlfs_error_clear();
    return dlfs_options_parse(o, argc, argv, 1, &exit_now);
}

static double field_(const struct dlfs_options *o, const struct range_ *r, bool epochs_field)
{
    const char *p = (const char *)o + r->off;
    if (r->kind == DLFS_OPT_REAL) {
        double d;
        memcpy(&d, p, sizeof d);
        return d;
    }
    if (epochs_field) p = (const char *)o + offsetof(struct dlfs_options, checkpoint_every_epochs);
    if (r->size == sizeof(int) || epochs_field) {
        int i;
        memcpy(&i, p, sizeof i);
        return i;
    }
    long l;
    memcpy(&l, p, sizeof l);
    return (double)l;
}

static void accepts_(const struct range_ *r, double v, const char *suffix, const char *extra)
{
    char val[64];
    if (r->kind == DLFS_OPT_REAL) snprintf(val, sizeof val, "%.17g", v);
    else snprintf(val, sizeof val, "%.0f%s", v, suffix);
    struct dlfs_options o;
    const enum dlfs_status st = parse_(&o, r->name, val, extra);
    CHECK(st == DLFS_OK, "--%s %s (a bound of [%g, %g]) refused: %s", r->name, val, r->lo, r->hi, dlfs_error_msg());
    if (st == DLFS_OK) CHECK(field_(&o, r, suffix[0]) == v, "--%s %s read as %g", r->name, val, field_(&o, r, suffix[0]));
}

static void refuses_(const struct range_ *r, double v, const char *suffix, const char *extra)
{
    char val[64], want[96];
    if (r->kind == DLFS_OPT_REAL) snprintf(val, sizeof val, "%.17g", v);
    else snprintf(val, sizeof val, "%.0f%s", v, suffix);
    struct dlfs_options o;
    const enum dlfs_status st = parse_(&o, r->name, val, extra);
    snprintf(want, sizeof want, "--%s '%s'", r->name, val);
    CHECK(st == DLFS_ERR_USAGE && strstr(dlfs_error_msg(), want), "--%s %s (outside [%g, %g]): status %d, '%s'",
          r->name, val, r->lo, r->hi, (int)st, dlfs_error_msg());
}

/* the nearest double beyond x (away from the range); not a subnormal, which
 * strtod reports as a range error rather than as a number */
static double beyond_(double x, double dir)
{
    const double y = nextafter(x, dir * INFINITY);
    return fabs(y) < DBL_MIN ? x + dir * DBL_MIN : y;
}

static void test_option_bounds(void)
{
    int numeric = 0;
    for (size_t i = 0; i < sizeof ranges_ / sizeof ranges_[0]; i++) {
        const struct range_ *r = &ranges_[i];
        if (!r->name) continue; /* a field another row sets */
        const bool integer = r->kind == DLFS_OPT_INT || r->kind == DLFS_OPT_LONG || r->kind == DLFS_OPT_U64 ||
                             r->kind == DLFS_OPT_EVERY;
        if (!integer && r->kind != DLFS_OPT_REAL) continue;
        /* --accum-steps: its limit is being changed elsewhere (a gradsync rule) */
        if (strcmp(r->name, "accum-steps") == 0) continue;
        const char *extra = r->kind == DLFS_OPT_EVERY ? "--checkpoint-dir d" : "";
        if (strcmp(r->name, "sample") == 0) extra = "--eval --resume c.h5"; /* generation's companions */
        else if (!strcmp(r->name, "temperature") || !strcmp(r->name, "top-k")) extra = "--eval --resume c.h5 --sample 5";
        numeric++;
        accepts_(r, r->lo, "", extra);
        accepts_(r, r->hi, "", extra);
        refuses_(r, integer ? r->lo - 1 : beyond_(r->lo, -1), "", extra);
        refuses_(r, integer ? r->hi + 1 : beyond_(r->hi, 1), "", extra);
        if (r->kind == DLFS_OPT_EVERY) { /* N epochs: the same range */
            accepts_(r, r->lo, "e", extra);
            accepts_(r, r->hi, "e", extra);
            struct dlfs_options o;
            char v[32];
            snprintf(v, sizeof v, "%.0fe", r->lo - 1);
            CHECK(parse_(&o, r->name, v, extra) == DLFS_ERR_USAGE, "--%s %s accepted", r->name, v);
            snprintf(v, sizeof v, "%.0fe", r->hi + 1);
            CHECK(parse_(&o, r->name, v, extra) == DLFS_ERR_USAGE, "--%s %s accepted", r->name, v);
        }
    }
    /* the rule between options: deterministic mode wants a power of two, up to the row's hi */
    for (int v = 1; v <= 4096; v++) {
        char val[16];
        snprintf(val, sizeof val, "%d", v);
        struct dlfs_options o;
        const enum dlfs_status st = parse_(&o, "virtual-shards", val, "--deterministic");
        const bool pow2 = (v & (v - 1)) == 0;
        if (pow2 || v == 3 || v == 4095)
            CHECK(st == (pow2 ? DLFS_OK : DLFS_ERR_USAGE), "--deterministic --virtual-shards %d: status %d (%s)", v,
                  (int)st, dlfs_error_msg());
    }
    CHECK(numeric >= 25, "only %d numeric options found in the table", numeric);
    printf("option bounds: %d numeric options, each at lo, hi, and just outside both\n", numeric);
}

int main(void)
{
    test_sampler_distribution();
    test_augment();
    test_bn_stats();
    test_option_bounds();
    T_DONE();
}
