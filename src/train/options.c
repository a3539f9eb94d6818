/* Command-line options of dlfs-train, generated from the table in
 * include/dlfs/options.h: getopt_long's table, parsing with range checks, the
 * cross-option rules, --help, and the digest the ranks compare. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/options.h"
#include "dlfs/util.h"

#define UNPAREN_(...) __VA_ARGS__

/* One row of the table, as data. */
struct row_ {
    const char *heading;            /* a --help section (the rest unused), else NULL */
    const char *name, *arg, *help;  /* name NULL: a field set by another row */
    enum dlfs_opt_kind kind;
    size_t off, size;
    double lo, hi;
    const char *const *choices;
    int nchoices, flags;
};

#define ROW_(field, type, kind, name, arg, def, lo, hi, choices, flags, help)                                     \
    {NULL, name, arg, help, kind, offsetof(struct dlfs_options, field), sizeof(type), (double)(lo), (double)(hi), \
     (const char *const[]){UNPAREN_ choices},                                                                     \
     (int)(sizeof((const char *const[]){UNPAREN_ choices}) / sizeof(const char *)), flags},
#define HEAD_(text) {text, NULL, NULL, NULL, DLFS_OPT_STR, 0, 0, 0, 0, NULL, 0, 0},
static const struct row_ rows_[] = {DLFS_OPTIONS(ROW_, HEAD_)};
#define NROWS_ ((int)(sizeof rows_ / sizeof rows_[0]))
/* getopt_long values: 256 + row index; 'h' for -h/--help, VERSION_ for --version. */
#define VERSION_ 255

static void defaults_(struct dlfs_options *o)
{
    memset(o, 0, sizeof *o);
#define DEF_(field, type, kind, name, arg, def, ...) o->field = (type)(def);
    DLFS_OPTIONS(DEF_, DLFS_OPT_NONE_)
#undef DEF_
}

/* ---- reading and writing a field by its row ---------------------------------- */

static long get_int_(const struct dlfs_options *o, const struct row_ *r)
{
    const char *p = (const char *)o + r->off;
    if (r->size == sizeof(bool) && (r->kind == DLFS_OPT_FLAG || r->kind == DLFS_OPT_CHOICE)) {
        bool b;
        memcpy(&b, p, sizeof b);
        return b;
    }
    if (r->size == sizeof(int)) {
        int v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    long v; /* long and uint64_t (values < 2^31) */
    memcpy(&v, p, sizeof v);
    return v;
}

static void set_int_(struct dlfs_options *o, const struct row_ *r, long v)
{
    char *p = (char *)o + r->off;
    if (r->size == sizeof(bool) && (r->kind == DLFS_OPT_FLAG || r->kind == DLFS_OPT_CHOICE)) {
        const bool b = v != 0;
        memcpy(p, &b, sizeof b);
    } else if (r->size == sizeof(int)) {
        const int i = (int)v;
        memcpy(p, &i, sizeof i);
    } else if (r->kind == DLFS_OPT_U64) {
        const uint64_t u = (uint64_t)v;
        memcpy(p, &u, sizeof u);
    } else {
        memcpy(p, &v, sizeof v);
    }
}

static double *real_(struct dlfs_options *o, const struct row_ *r) { return (double *)((char *)o + r->off); }
static const char *str_(const struct dlfs_options *o, const struct row_ *r)
{
    const char *s;
    memcpy(&s, (const char *)o + r->off, sizeof s);
    return s;
}

/* ---- parsing one value --------------------------------------------------------- */

static enum dlfs_status bad_(const char *opt, const char *val, const char *want)
{
    return dlfs_error_set(DLFS_ERR_USAGE, "--%s '%s': %s", opt, val, want);
}

static enum dlfs_status int_(const struct row_ *r, const char *s, const char *name, long *out)
{
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return bad_(name, s, "expected an integer");
    if (v < (long)r->lo || v > (long)r->hi) {
        char want[96];
        snprintf(want, sizeof want, "must be between %ld and %ld", (long)r->lo, (long)r->hi);
        return bad_(name, s, want);
    }
    *out = v;
    return DLFS_OK;
}

static enum dlfs_status real_arg_(const struct row_ *r, const char *s, double *out)
{
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return bad_(r->name, s, "expected a number");
    if (v < r->lo || v > r->hi) {
        char want[96];
        snprintf(want, sizeof want, "must be between %g and %g", r->lo, r->hi);
        return bad_(r->name, s, want);
    }
    *out = v;
    return DLFS_OK;
}

static enum dlfs_status choice_(const struct row_ *r, const char *s, long *out)
{
    for (int i = 0; i < r->nchoices; i++)
        if (strcmp(s, r->choices[i]) == 0) {
            *out = i;
            return DLFS_OK;
        }
    char want[128] = "expected one of:";
    for (int i = 0; i < r->nchoices; i++) {
        strncat(want, " ", sizeof want - strlen(want) - 1);
        strncat(want, r->choices[i], sizeof want - strlen(want) - 1);
    }
    return bad_(r->name, s, want);
}

/* --checkpoint-every N (steps) or Ne (epochs; the field after it). */
static enum dlfs_status every_(struct dlfs_options *o, const struct row_ *r, const char *a)
{
    const size_t len = strlen(a);
    char num[32];
    const int epochs = len > 1 && len < sizeof num && a[len - 1] == 'e';
    snprintf(num, sizeof num, "%.*s", (int)(epochs ? len - 1 : len), a);
    long v;
    if (len >= sizeof num || int_(r, num, r->name, &v) != DLFS_OK) {
        dlfs_error_clear();
        return bad_(r->name, a, "expected a number of steps, or of epochs with the suffix e (e.g. 500 or 1e)");
    }
    set_int_(o, epochs ? r + 1 : r, v);
    return DLFS_OK;
}

static enum dlfs_status set_(struct dlfs_options *o, const struct row_ *r, const char *a)
{
    long v = 1;
    switch (r->kind) {
    case DLFS_OPT_STR: memcpy((char *)o + r->off, &a, sizeof a); return DLFS_OK;
    case DLFS_OPT_FLAG: break;
    case DLFS_OPT_INT:
    case DLFS_OPT_LONG:
    case DLFS_OPT_U64: DLFS_TRY(int_(r, a, r->name, &v)); break;
    case DLFS_OPT_REAL: return real_arg_(r, a, real_(o, r));
    case DLFS_OPT_CHOICE: DLFS_TRY(choice_(r, a, &v)); break;
    case DLFS_OPT_EVERY: return every_(o, r, a);
    }
    set_int_(o, r, v);
    return DLFS_OK;
}

/* ---- the rules between options ------------------------------------------------- */

static enum dlfs_status rules_(struct dlfs_options *o)
{
    if (o->batch && o->batch_per_rank)
        return dlfs_error_set(DLFS_ERR_USAGE, "give either --batch (global) or --batch-per-rank, not both");
    if (!o->batch && !o->batch_per_rank) o->batch = 128;
    const struct dlfs_optim_desc *opt = dlfs_optim_desc(o->optim);
    if (o->lr < 0) o->lr = opt->lr;
    if (o->weight_decay < 0) o->weight_decay = opt->weight_decay;
    if (o->nesterov && !opt->nesterov)
        return dlfs_error_set(DLFS_ERR_USAGE, "--nesterov applies to --optim sgd only");
    if (o->resume && strcmp(o->resume, "latest") == 0 && !o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_USAGE, "--resume latest needs --checkpoint-dir DIR to look in");
    if ((o->checkpoint_every || o->checkpoint_every_epochs) && !o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_USAGE, "--checkpoint-every needs --checkpoint-dir DIR");
    if (o->rollback && !o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_USAGE, "--rollback moves checkpoints within --checkpoint-dir DIR; give "
                              "--checkpoint-dir (with --resume FILE|latest), or drop --rollback");
    if (o->eval_only && !o->resume)
        return dlfs_error_set(DLFS_ERR_USAGE, "--eval needs --resume FILE (the checkpoint to evaluate)");
    if (o->ckpt_sharded && (!o->checkpoint_dir || o->zero != 1))
        return dlfs_error_set(DLFS_ERR_USAGE, "--ckpt-sharded writes the ZeRO-1 optimizer state from every rank: it "
                              "needs --zero 1 and --checkpoint-dir DIR; add them, or drop --ckpt-sharded");
    if (o->ckpt_sharded && o->optim == DLFS_OPTIM_SGD && o->momentum == 0)
        return dlfs_error_set(DLFS_ERR_USAGE, "--ckpt-sharded: SGD without momentum keeps no optimizer state to "
                              "shard; drop --ckpt-sharded");
    if ((o->sample || o->prompt || o->top_k || o->temperature != 1.0) && !(o->eval_only && o->sample))
        return dlfs_error_set(DLFS_ERR_USAGE, "--sample N (with --prompt, --temperature, --top-k) generates text "
                              "from a checkpoint: give --eval --resume FILE --sample N");
    if (!o->bench && !o->data)
        return dlfs_error_set(DLFS_ERR_USAGE, "--data FILE is required (make one with 'dlfs-data convert'; "
                              "or use --bench for synthetic data)");
    if (o->comm == DLFS_COMM_PATH_NCCL && o->device == DLFS_DEVICE_CPU)
        return dlfs_error_set(DLFS_ERR_USAGE, "--comm nccl sums GPU buffers but --device cpu keeps them in host "
                              "memory; use --comm mpi (or auto) with --device cpu");
    if (o->comm == DLFS_COMM_PATH_NCCL && o->deterministic)
        return dlfs_error_set(DLFS_ERR_USAGE, "--comm nccl: --deterministic sums gradients in one fixed order "
                              "over MPI (that is its bit-identical guarantee); use --comm auto or mpi with it");
    if (o->deterministic && (o->virtual_shards & (o->virtual_shards - 1)))
        return dlfs_error_set(DLFS_ERR_USAGE, "--virtual-shards %d: must be a power of two (1, 2, 4, 8, ...)",
                              o->virtual_shards);
    return DLFS_OK;
}

/* ---- argv ---------------------------------------------------------------------- */

static int longopts_(struct option *lo)
{
    int n = 0;
    for (int i = 0; i < NROWS_; i++)
        if (rows_[i].name)
            lo[n++] = (struct option){rows_[i].name, rows_[i].kind == DLFS_OPT_FLAG ? no_argument : required_argument,
                                      0, 256 + i};
    lo[n++] = (struct option){"help", no_argument, 0, 'h'};
    lo[n++] = (struct option){"version", no_argument, 0, VERSION_};
    lo[n] = (struct option){0, 0, 0, 0};
    return n;
}

enum dlfs_status dlfs_options_parse(struct dlfs_options *o, int argc, char **argv, int rank, bool *exit_now)
{
    struct option lo[NROWS_ + 3];
    longopts_(lo);
    defaults_(o);
    *exit_now = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h' || c == VERSION_) {
            if (rank == 0 && c == 'h') dlfs_options_usage(stdout);
            if (rank == 0 && c == VERSION_) dlfs_version_print("dlfs-train");
            *exit_now = true;
            return DLFS_OK;
        }
        if (c == ':')
            return dlfs_error_set(DLFS_ERR_USAGE, "option '%s' needs a value (see --help)", argv[optind - 1]);
        if (c < 256 || c >= 256 + NROWS_)
            return dlfs_error_set(DLFS_ERR_USAGE, "unknown option '%s' (see --help)", argv[optind - 1]);
        DLFS_TRY(set_(o, &rows_[c - 256], optarg));
    }
    if (optind < argc)
        return dlfs_error_set(DLFS_ERR_USAGE, "unexpected argument '%s' (options start with --; see --help)",
                              argv[optind]);
    return rules_(o);
}

/* ---- --help -------------------------------------------------------------------- */

/* "(default X)" from the defaults themselves; "" where there is none to show. */
static void default_text_(const struct dlfs_options *d, const struct row_ *r, char *buf, size_t len)
{
    buf[0] = '\0';
    if (r->flags & DLFS_OPT_NODEF || r->kind == DLFS_OPT_FLAG) return;
    if (r->kind == DLFS_OPT_STR) {
        if (str_(d, r)) snprintf(buf, len, " (default %s)", str_(d, r));
    } else if (r->kind == DLFS_OPT_REAL) {
        snprintf(buf, len, " (default %g)", *real_((struct dlfs_options *)d, r));
    } else if (r->kind == DLFS_OPT_CHOICE) {
        snprintf(buf, len, " (default %s)", r->choices[get_int_(d, r)]);
    } else {
        snprintf(buf, len, " (default %ld)", get_int_(d, r));
    }
}

/* The argument --help shows: the row's, or for a choice without one its names
 * joined by '|' (a table's choices, as --optim's, stay in step by themselves). */
static void arg_text_(const struct row_ *r, char *buf, size_t len)
{
    buf[0] = '\0';
    if (r->arg || r->kind != DLFS_OPT_CHOICE) {
        snprintf(buf, len, "%s", r->arg ? r->arg : "");
        return;
    }
    for (int i = 0; i < r->nchoices; i++) {
        if (i) strncat(buf, "|", len - strlen(buf) - 1);
        strncat(buf, r->choices[i], len - strlen(buf) - 1);
    }
}

void dlfs_options_usage(FILE *f)
{
    struct dlfs_options d;
    defaults_(&d);
    fputs("Usage: mpirun -np N dlfs-train --data FILE [options]\n"
          "       mpirun -np N dlfs-train --bench --model M --batch B [--steps S]\n\n"
          "Trains a neural network with data parallelism over MPI ranks: every rank takes its\n"
          "shard of each global mini-batch, gradients are summed across ranks before every update.\n", f);
    for (int i = 0; i < NROWS_; i++) {
        const struct row_ *r = &rows_[i];
        if (r->heading) fprintf(f, "\n%s\n", r->heading);
        if (!r->name) continue;
        char head[64], def[64], arg[40];
        arg_text_(r, arg, sizeof arg);
        snprintf(head, sizeof head, "--%s%s%s", r->name, arg[0] ? " " : "", arg);
        default_text_(&d, r, def, sizeof def);
        fprintf(f, "  %-22s%s", head, strlen(head) >= 22 ? "  " : " ");
        for (const char *p = r->help; *p;) { /* continuation lines line up under the first */
            const char *nl = strchr(p, '\n');
            const int n = nl ? (int)(nl - p) : (int)strlen(p);
            fprintf(f, "%.*s%s\n", n, p, nl ? "" : def);
            if (!nl) break;
            fprintf(f, "%25s", "");
            p = nl + 1;
        }
    }
    fputs("\n  -h, --help             this text;  --version  the version\n"
          "Exit codes: 0 done, 1 runtime error (message names the file/option), 2 usage error,\n"
          "  3 stopped by SIGTERM/SIGUSR1/Ctrl-C with a checkpoint written (resume with --resume latest),\n"
          "  4 stopped by a signal without --checkpoint-dir (nothing saved), 130 a second Ctrl-C\n"
          "  (stopped at once). Under mpirun, Ctrl-C makes mpirun itself exit 1 (see README.md).\n", f);
}

/* ---- digest -------------------------------------------------------------------- */

/* The digested options as "name=value;..." into buf (len may be 0); returns the
 * length of the whole text, as snprintf does. */
static size_t describe_(const struct dlfs_options *o, char *buf, size_t len)
{
    size_t used = 0;
    if (len) buf[0] = '\0';
    for (int i = 0; i < NROWS_; i++) {
        const struct row_ *r = &rows_[i];
        if (r->heading || !(r->flags & (DLFS_OPT_DIGEST | DLFS_OPT_PRESENCE))) continue;
        const char *field = r->name ? r->name : "checkpoint-every-epochs";
        char *at = used < len ? buf + used : NULL;
        const size_t room = used < len ? len - used : 0;
        int n;
        if (r->flags & DLFS_OPT_PRESENCE) n = snprintf(at, room, "%s=%d;", field, str_(o, r) != NULL);
        else if (r->kind == DLFS_OPT_STR) n = snprintf(at, room, "%s=%s;", field, str_(o, r) ? str_(o, r) : "");
        else if (r->kind == DLFS_OPT_REAL) n = snprintf(at, room, "%s=%.17g;", field, *real_((struct dlfs_options *)o, r));
        else if (r->kind == DLFS_OPT_CHOICE) n = snprintf(at, room, "%s=%s;", field, r->choices[get_int_(o, r)]);
        else n = snprintf(at, room, "%s=%ld;", field, get_int_(o, r));
        used += n > 0 ? (size_t)n : 0;
    }
    return used;
}

void dlfs_options_describe(const struct dlfs_options *o, char *buf, size_t len)
{
    describe_(o, buf, len);
}

struct dlfs_optim_config dlfs_options_optim(const struct dlfs_options *o, int global_batch)
{
    struct dlfs_optim_config c = {
        .kind = o->optim,
        .lr = o->lr,
        .momentum = o->momentum,
        .weight_decay = o->weight_decay,
        .beta1 = o->beta1,
        .beta2 = o->beta2,
        .eps = o->eps,
        .nesterov = o->nesterov,
        .schedule = o->schedule,
        .warmup = o->warmup,
        .lr_min = o->lr_min,
    };
    if (o->lr_scaling == DLFS_LR_SCALING_LINEAR) c.lr = o->lr * global_batch / o->lr_ref_batch;
    return c;
}

uint64_t dlfs_options_digest(const struct dlfs_options *o)
{
    const size_t n = describe_(o, NULL, 0) + 1; /* the whole text: long paths included */
    char *buf = dlfs_malloc(n);
    describe_(o, buf, n);
    struct dlfs_sha256 s;
    uint8_t d[32];
    dlfs_sha256_init(&s);
    dlfs_sha256_update(&s, buf, strlen(buf));
    dlfs_sha256_final(&s, d);
    free(buf);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | d[i];
    return v;
}
