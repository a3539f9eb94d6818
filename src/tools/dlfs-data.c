/* dlfs-data: make and inspect dlfs dataset files.
 *
 *   dlfs-data convert ... -o OUT.h5   (IDX files -> image dataset; usage_text below)
 *   dlfs-data text FILE|DIR ... -o OUT.h5   (text -> token file: data-text.c)
 *   dlfs-data info FILE
 *   dlfs-data synth ... -o OUT.h5   (random images: dlfs-data-synth.c)
 *
 * Exit status: 0 success, 1 failure (one line "dlfs-data: <message>" on stderr),
 * 2 usage error. No MPI here: this runs on a login node before any job.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlfs/dataset.h"
#include "dlfs/tokens.h"
#include "dlfs/util.h"
#include "tools/data-text.h"
#include "tools/dlfs-data.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXIT_USAGE 2
#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

static const char *const fmnist_classes[] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                             "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                             "Ankle boot"};
static const char *const mnist_classes[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
#define FMNIST_SOURCE "Fashion-MNIST (Zalando Research), https://github.com/zalandoresearch/fashion-mnist"
#define FMNIST_LICENSE "MIT License, Copyright (c) 2017 Zalando SE"
#define MNIST_SOURCE "MNIST database (Y. LeCun, C. Cortes, C. J. C. Burges)"
#define MNIST_LICENSE "Creative Commons Attribution-Share Alike 3.0"

static const char *const usage_text[3] = {
    "usage: dlfs-data convert --train-images F --train-labels F --test-images F --test-labels F\n"
    "                         [--classes \"a,b,...\" | --preset fashion-mnist|mnist]\n"
    "                         [--source TEXT] [--license TEXT] [--train-limit N] [--test-limit N] [--force] -o OUT.h5\n"
    "       dlfs-data convert --fashion-mnist [DIR] [--train-limit N] [--test-limit N] [--force] -o OUT.h5\n"
    "       dlfs-data info FILE\n"
    "       dlfs-data synth --size MB [--shape CxHxW] [--classes K] [--test N] [--seed N] -o OUT.h5\n"
    "       dlfs-data ckpt-merge DIR/ckpt-<step>.d -o FILE.h5\n"
    "       dlfs-data --version   (the version, the commit, the backends built in)\n", "\n"
    "convert  reads IDX files (MNIST format, gzipped or plain, uint8) and writes a dlfs\n"
    "         dataset (HDF5): /train/images [N,C,H,W], /train/labels [N], /test/...,\n"
    "         class names, source, license and per-channel mean/std of the train images.\n"
    "         3-D image files [N,H,W] become C=1; 4-D files are read as [N,C,H,W].\n"
    "         Without --classes or --preset the classes are named 0..K-1, K = max label + 1.\n"
    "         --fashion-mnist takes the four standard files from DIR\n"
    "         (default " FMNIST_DEFAULT_DIR ") with the Fashion-MNIST class names.\n"
    "         --train-limit N / --test-limit N keep only the first N samples of that\n"
    "         split (a slice for quick runs and tests; mean/std are the slice's own).\n"
    "         It refuses an -o that is one of its inputs, an -o that exists (unless\n"
    "         --force: then it is replaced whole, atomically), and train images with a\n"
    "         (nearly) constant channel (std 0: normalising would divide by 0).\n"
    "info     prints a summary of a dlfs dataset (shapes, classes, per-class counts,\n"
    "         mean/std, source, license) or of a token file.\n"
    "synth    random train images, ~MB MiB of them (1x28x28, 10 classes, 1000 test: tools/dlfs-data-synth.c),\n"
    "         written a chunk at a time (a few MiB of memory whatever MB).\n"
    "ckpt-merge  one single-file checkpoint from a sharded one (--ckpt-sharded), verified first.\n",
    "Limits on sizes: datasets/README.md.\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n"};

static void usage_(void)
{
    const char *parts[5] = {usage_text[0], data_text_usage, usage_text[1], data_text_help, usage_text[2]};
    for (int i = 0; i < 5; i++) fputs(parts[i], stdout);
}

/* One line on stderr, exit status 1. */
static int fail_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlfs-data: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAILURE;
}

/* One line on stderr, exit status 2. */
static int usage_error_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlfs-data: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see 'dlfs-data --help')\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static char *str_dup_(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(dlfs_malloc(n), s, n);
}

/* ---- convert --------------------------------------------------------------------- */
enum { TRAIN_IMG, TRAIN_LAB, TEST_IMG, TEST_LAB, NFILES };
static const char *const file_opt[NFILES] = {"--train-images", "--train-labels",
                                             "--test-images", "--test-labels"};
static const char *const fmnist_names[NFILES] = {"train-images-idx3-ubyte",
                                                 "train-labels-idx1-ubyte",
                                                 "t10k-images-idx3-ubyte",
                                                 "t10k-labels-idx1-ubyte"};

struct convert_opts {
    char *files[NFILES];   /* owned */
    const char *classes, *preset, *source, *license, *out, *fmnist_dir;
    size_t limit[2];   /* --train-limit, --test-limit: the first N samples of the split (0: all) */
    int fmnist, force; /* --fashion-mnist; --force: replace an existing -o */
};

/* Fill the four file names from a Fashion-MNIST directory (plain file preferred, else .gz). */
static int fmnist_resolve_(struct convert_opts *o)
{
    struct stat sb;
    if (stat(o->fmnist_dir, &sb) != 0)
        return fail_("cannot open Fashion-MNIST directory %s: %s", o->fmnist_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return fail_("%s is not a directory; --fashion-mnist takes the directory holding the "
                    "four IDX files", o->fmnist_dir);
    for (int k = 0; k < NFILES; k++) {
        size_t len = strlen(o->fmnist_dir) + strlen(fmnist_names[k]) + 8;
        char *p = dlfs_malloc(len);
        snprintf(p, len, "%s/%s", o->fmnist_dir, fmnist_names[k]);
        if (stat(p, &sb) != 0) snprintf(p, len, "%s/%s.gz", o->fmnist_dir, fmnist_names[k]);
        if (stat(p, &sb) != 0) {
            free(p);
            return fail_("%s has no %s or %s.gz; give the directory holding the Fashion-MNIST "
                        "IDX files", o->fmnist_dir, fmnist_names[k], fmnist_names[k]);
        }
        o->files[k] = p;
    }
    return EXIT_SUCCESS;
}

/* Split "a,b,c" into names (surrounding blanks trimmed). Returns the count or -1. */
static int classes_parse_(const char *list, char ***out)
{
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    if (n > DLFS_MAX_CLASSES) return -1;
    char **v = dlfs_calloc((size_t)n, sizeof *v);
    const char *p = list;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *b = p;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        const char *t = e;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t')) t--;
        v[i] = dlfs_calloc((size_t)(t - b) + 1, 1);
        memcpy(v[i], b, (size_t)(t - b));
        p = *e ? e + 1 : e;
    }
    *out = v;
    return n;
}

static void classes_free_(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* Check shapes and labels of the four IDX files and build the dataset (images and
 * labels point into the IDX buffers; classes are owned by the caller). Runs before
 * any statistics: every size below is within the IDX reader's limits (an image
 * of at most DLFS_IDX_MAX_ITEM values), so the products fit. */
static int convert_check_(const struct convert_opts *o, struct dlfs_idx *f, int have_names,
                         int *num_classes, struct dlfs_dataset *ds)
{
    uint32_t shape[2][3];
    for (int s = 0; s < 2; s++) {
        const struct dlfs_idx *im = &f[2 * s], *lb = &f[2 * s + 1];
        const char *imf = o->files[2 * s], *lbf = o->files[2 * s + 1];
        if (im->ndim != 3 && im->ndim != 4)
            return fail_("%s has %d dimensions; image files need 3 [N,H,W] or 4 [N,C,H,W]", imf,
                        im->ndim);
        if (lb->ndim != 1)
            return fail_("%s has %d dimensions; a labels file has 1 [N] (swapped %s and %s?)",
                        lbf, lb->ndim, file_opt[2 * s], file_opt[2 * s + 1]);
        if (im->dims[0] != lb->dims[0])
            return fail_("%s has %u images but %s has %u labels; give the matching labels file",
                        imf, im->dims[0], lbf, lb->dims[0]);
        if (im->dims[0] > DLFS_DATASET_MAX_N)
            return fail_("%s has %u images; a dlfs dataset holds at most %u per split (datasets/README.md, "
                        "limits)", imf, im->dims[0], DLFS_DATASET_MAX_N);
        const uint32_t c = im->ndim == 4 ? im->dims[1] : 1;
        if (c > DLFS_MAX_CHANNELS)
            return fail_("%s has %u channels; dlfs supports at most %d", imf, c, DLFS_MAX_CHANNELS);
        shape[s][0] = c;
        shape[s][1] = im->dims[im->ndim - 2];
        shape[s][2] = im->dims[im->ndim - 1];
    }
    if (memcmp(shape[0], shape[1], sizeof shape[0]) != 0)
        return fail_("%s has %ux%ux%u images but %s has %ux%ux%u; train and test need one shape",
                    o->files[TRAIN_IMG], shape[0][0], shape[0][1], shape[0][2],
                    o->files[TEST_IMG], shape[1][0], shape[1][1], shape[1][2]);
    int maxl = 0;
    for (int s = 0; s < 2; s++) {
        const struct dlfs_idx *lb = &f[2 * s + 1];
        for (uint32_t i = 0; i < lb->dims[0]; i++) {
            if (have_names && lb->data[i] >= *num_classes)
                return fail_("%s: label %d at index %u is outside the %d classes named by "
                            "--classes/--preset; give one name per class", o->files[2 * s + 1],
                            lb->data[i], i, *num_classes);
            if (lb->data[i] > maxl) maxl = lb->data[i];
        }
    }
    if (!have_names) *num_classes = maxl + 1;
    ds->c = (int)shape[0][0], ds->h = (int)shape[0][1], ds->w = (int)shape[0][2];
    ds->train = (struct dlfs_split){.n = f[TRAIN_IMG].dims[0], .images = f[TRAIN_IMG].data, .labels = f[TRAIN_LAB].data};
    ds->test = (struct dlfs_split){.n = f[TEST_IMG].dims[0], .images = f[TEST_IMG].data, .labels = f[TEST_LAB].data};
    if (o->limit[0] && ds->train.n > o->limit[0]) ds->train.n = o->limit[0];
    if (o->limit[1] && ds->test.n > o->limit[1]) ds->test.n = o->limit[1];
    return EXIT_SUCCESS;
}

/* -o must not be an input (same file after links), nor, without --force, exist. */
static int output_check_(const struct convert_opts *o)
{
    for (int i = 0; i < NFILES; i++)
        if (dlfs_path_same(o->files[i], o->out))
            return usage_error_("-o %s is the same file as %s %s: converting would replace an input; write "
                               "the dataset to another file", o->out, file_opt[i], o->files[i]);
    if (!o->force && lstat(o->out, &(struct stat){0}) == 0)
        return usage_error_("-o %s exists: give --force to replace it, or another -o", o->out);
    return EXIT_SUCCESS;
}

/* The normalisation of the train images: finite and not degenerate. */
static int stats_check_(const struct convert_opts *o, struct dlfs_dataset *ds)
{
    dlfs_dataset_stats(&ds->train, ds->c, ds->h, ds->w, ds->mean, ds->std);
    if (dlfs_dataset_check_norm(o->files[TRAIN_IMG], ds->c, ds->mean, ds->std) != DLFS_OK)
        return fail_("%s", dlfs_error_msg());
    return EXIT_SUCCESS;
}

static int convert_run_(struct convert_opts *o)
{
    char **names = NULL;
    int k = 0, have_names = 1, rc = EXIT_SUCCESS;
    struct dlfs_idx f[NFILES] = {{0}};
    struct dlfs_dataset ds = {0};
    if (o->classes) {
        k = classes_parse_(o->classes, &names);
        if (k < 0) return usage_error_("--classes names more than %d classes", DLFS_MAX_CLASSES);
        for (int i = 0; i < k; i++)
            if (!names[i][0]) {
                classes_free_(names, k);
                return usage_error_("--classes: class name %d is empty", i);
            }
    } else if (o->preset) {
        int fm = strcmp(o->preset, "fashion-mnist") == 0;
        if (!fm && strcmp(o->preset, "mnist") != 0)
            return usage_error_("unknown --preset '%s' (known: fashion-mnist, mnist)", o->preset);
        const char *const *src = fm ? fmnist_classes : mnist_classes;
        k = 10;
        names = dlfs_calloc((size_t)k, sizeof *names);
        for (int i = 0; i < k; i++) names[i] = str_dup_(src[i]);
        if (!o->source) o->source = fm ? FMNIST_SOURCE : MNIST_SOURCE;
        if (!o->license) o->license = fm ? FMNIST_LICENSE : MNIST_LICENSE;
    } else {
        have_names = 0;
    }
    if (o->fmnist) rc = fmnist_resolve_(o);
    if (rc == EXIT_SUCCESS) rc = output_check_(o);
    for (int i = 0; i < NFILES && rc == EXIT_SUCCESS; i++)
        if (dlfs_idx_read(o->files[i], &f[i]) != DLFS_OK) rc = fail_("%s", dlfs_error_msg());
    if (rc == EXIT_SUCCESS) rc = convert_check_(o, f, have_names, &k, &ds);
    if (rc == EXIT_SUCCESS) {
        if (!have_names) {  /* classes named after their label: "0".."K-1" */
            names = dlfs_calloc((size_t)k, sizeof *names);
            for (int i = 0; i < k; i++) {
                names[i] = dlfs_malloc(12);
                snprintf(names[i], 12, "%d", i);
            }
        }
        ds.num_classes = k;
        ds.classes = names;
        ds.source = (char *)(o->source ? o->source : "");
        ds.license = (char *)(o->license ? o->license : "");
        rc = stats_check_(o, &ds);
        if (rc == EXIT_SUCCESS && dlfs_dataset_save(o->out, &ds) != DLFS_OK) rc = fail_("%s", dlfs_error_msg());
        else if (rc == EXIT_SUCCESS)
            printf("wrote %s: %zu train + %zu test images of %dx%dx%d, %d classes\n", o->out,
                   ds.train.n, ds.test.n, ds.c, ds.h, ds.w, k);
    }
    for (int i = 0; i < NFILES; i++) dlfs_idx_free(&f[i]);
    classes_free_(names, k);
    return rc;
}

/* --train-limit/--test-limit N: a whole number from 1 to the most samples a split holds. */
static int limit_parse_(const char *opt, const char *arg, size_t *out)
{
    char *end;
    errno = 0;
    const long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < 1 || v > DLFS_DATASET_MAX_N)
        return usage_error_("%s '%s': give a whole number of samples from 1 to %u", opt, arg, DLFS_DATASET_MAX_N);
    *out = (size_t)v;
    return EXIT_SUCCESS;
}

static int cmd_convert_(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"train-images", required_argument, NULL, 'A'}, {"train-labels", required_argument, NULL, 'B'},
        {"test-images", required_argument, NULL, 'C'},  {"test-labels", required_argument, NULL, 'D'},
        {"classes", required_argument, NULL, 'k'},      {"preset", required_argument, NULL, 'p'},
        {"source", required_argument, NULL, 's'},       {"license", required_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'},       {"fashion-mnist", optional_argument, NULL, 'F'},
        {"train-limit", required_argument, NULL, 'T'},  {"test-limit", required_argument, NULL, 't'},
        {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct convert_opts o = {{NULL}, NULL, NULL, NULL, NULL, NULL, FMNIST_DEFAULT_DIR, {0, 0}, 0, 0};
    const char *given[NFILES] = {NULL};
    int c, rc = EXIT_SUCCESS;
    opterr = 0;  /* we print our own one-line messages */
    optind = 1;
    /* '+': stop at the first non-option; ':': report a missing value as ':'. */
    while ((c = getopt_long(argc, argv, "+:ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'A': case 'B': case 'C': case 'D': given[c - 'A'] = optarg; break;
        case 'k': o.classes = optarg; break;
        case 'p': o.preset = optarg; break;
        case 's': o.source = optarg; break;
        case 'l': o.license = optarg; break;
        case 'o': o.out = optarg; break;
        case 'f': o.force = 1; break;
        case 'T': case 't':
            if (limit_parse_(c == 'T' ? "--train-limit" : "--test-limit", optarg, &o.limit[c == 't']) != EXIT_SUCCESS)
                return EXIT_USAGE;
            break;
        case 'F':
            o.fmnist = 1;
            /* Accept "--fashion-mnist DIR" as well as "--fashion-mnist=DIR". */
            if (!optarg && optind < argc && argv[optind][0] != '-') optarg = argv[optind++];
            if (optarg) o.fmnist_dir = optarg;
            break;
        case 'h': usage_(); return EXIT_SUCCESS;
        case ':': return usage_error_("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error_("unknown option '%s' for 'convert'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error_("unexpected argument '%s' for 'convert'", argv[optind]);
    if (!o.out) return usage_error_("convert needs -o OUT.h5");
    if (o.classes && o.preset) return usage_error_("give --classes or --preset, not both");
    int nfiles = 0;
    for (int i = 0; i < NFILES; i++) nfiles += given[i] != NULL;
    if (o.fmnist && nfiles) return usage_error_("give --fashion-mnist or the four IDX files, not both");
    if (o.fmnist && !o.classes && !o.preset) o.preset = "fashion-mnist";
    if (!o.fmnist) {
        for (int i = 0; i < NFILES; i++)
            if (!given[i]) return usage_error_("convert needs %s (or --fashion-mnist DIR)", file_opt[i]);
        for (int i = 0; i < NFILES; i++) o.files[i] = str_dup_(given[i]);
    }
    rc = convert_run_(&o);
    for (int i = 0; i < NFILES; i++) free(o.files[i]);
    return rc;
}

/* ---- info ---------------------------------------------------------------------- */

static int cmd_info_(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage_();
        return EXIT_SUCCESS;
    }
    if (argc != 2 || argv[1][0] == '-')
        return usage_error_("info takes exactly one dataset FILE");
    if (dlfs_tokens_probe(argv[1])) return data_text_info(argv[1]);
    struct dlfs_dataset ds;
    if (dlfs_dataset_open(argv[1], &ds, 1) != DLFS_OK) return fail_("%s", dlfs_error_msg());
    size_t *count = dlfs_calloc(2 * (size_t)ds.num_classes, sizeof *count);
    for (size_t i = 0; i < ds.train.n; i++) count[ds.train.labels[i]]++;
    for (size_t i = 0; i < ds.test.n; i++) count[ds.num_classes + ds.test.labels[i]]++;
    char *esc = data_printable(ds.path);
    printf("file:     %s\n", esc);
    free(esc);
    printf("format:   %s, version %d\n", DLFS_DATASET_FORMAT, DLFS_DATASET_VERSION);
    printf("images:   %d x %d x %d (C x H x W), uint8\n", ds.c, ds.h, ds.w);
    printf("train:    %zu samples\n", ds.train.n);
    printf("test:     %zu samples\n", ds.test.n);
    printf("classes:  %d\n", ds.num_classes);
    printf("  %5s  %-20s %8s %8s\n", "label", "name", "train", "test");
    for (int i = 0; i < ds.num_classes; i++) {
        esc = data_printable(ds.classes[i]);
        printf("  %5d  %-20s %8zu %8zu\n", i, esc, count[i], count[ds.num_classes + i]);
        free(esc);
    }
    printf("mean:    ");
    for (int i = 0; i < ds.c; i++) printf(" %.6f", ds.mean[i]);
    printf("\nstd:     ");
    for (int i = 0; i < ds.c; i++) printf(" %.6f", ds.std[i]);
    const char *text[2][2] = {{"source: ", ds.source}, {"license:", ds.license}};
    printf("\n");
    for (int i = 0; i < 2; i++) {
        esc = data_printable(text[i][1]);
        printf("%s  %s\n", text[i][0], esc[0] ? esc : "(not given)");
        free(esc);
    }
    free(count);
    dlfs_dataset_free(&ds);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage_error_("missing subcommand: convert, text, info or synth");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage_();
        return EXIT_SUCCESS;
    }
    if (!strcmp(cmd, "--version")) return dlfs_version_print("dlfs-data"), EXIT_SUCCESS;
    int rc;
    if (!strcmp(cmd, "convert")) rc = cmd_convert_(argc - 1, argv + 1);
    else if (!strcmp(cmd, "text")) rc = data_text_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "info")) rc = cmd_info_(argc - 1, argv + 1);
    else if (!strcmp(cmd, "synth")) rc = dlfs_data_synth(argc - 1, argv + 1);
    else if (!strcmp(cmd, "ckpt-merge")) rc = dlfs_data_ckpt_merge(argc - 1, argv + 1);
    else return usage_error_("unknown subcommand '%s' (known: convert, text, info, synth, ckpt-merge)", cmd);
    /* A failed stdout (closed pipe, full disk) must not pass for success. */
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == EXIT_SUCCESS) rc = fail_("cannot write output: %s", strerror(errno));
    return rc;
}
