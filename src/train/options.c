/* Command-line options of dlfs-train (getopt_long), their validation and digest. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/train.h"
#include "dlfs/util.h"

static const char usage_[] =
"Usage: mpirun -np N dlfs-train --data FILE [options]\n"
"       mpirun -np N dlfs-train --bench --model M --batch B [--steps S]\n"
"\n"
"Trains a neural network with data parallelism over MPI ranks: every rank takes its\n"
"shard of each global mini-batch, gradients are summed across ranks before every update.\n"
"\n"
"Data and model:\n"
"  --data FILE            dataset file written by 'dlfs-data convert' (HDF5)\n"
"  --model NAME|SPEC      mlp (784-512-512-10, ReLU; default), mlp-large\n"
"                         (784-4096-4096-4096-10), a shorthand 784-256-10[:ACT] or a layer\n"
"                         list in(784),dense(256),gelu,dense(10); ACT: relu tanh sigmoid gelu\n"
"                         cnn: in(1x28x28),conv(32,k5,p2),relu,maxpool(2),conv(64,k5,p2),\n"
"                         relu,maxpool(2),flatten,dense(1024),relu,dense(10); layers\n"
"                         conv(C,kK[,sS][,pP]) maxpool(K[,sS]) flatten dropout(P) batchnorm\n"
"                         (README, Convolutional networks); cnn-bn: cnn with batchnorm after\n"
"                         each conv and dropout(0.5) before the last layer\n"
"Training:\n"
"  --epochs N             passes over the training set (default 10)\n"
"  --batch B              GLOBAL batch, split evenly over the ranks (default 128)\n"
"  --batch-per-rank B     per-rank batch instead (global = B x ranks; weak scaling)\n"
"  --lr X                 learning rate (default 1e-3 for adam/adamw, 0.05 for sgd)\n"
"  --lr-scaling none|linear  linear: lr x global_batch / --lr-ref-batch (default none)\n"
"  --lr-ref-batch B       batch the --lr is meant for under linear scaling (default 128)\n"
"  --optim sgd|adam|adamw optimizer (default adam)\n"
"  --momentum X           SGD momentum (default 0.9); --nesterov for Nesterov momentum\n"
"  --weight-decay X       L2 (sgd, adam) or decoupled (adamw) decay (default 0; adamw 0.01)\n"
"  --beta1 X --beta2 X --eps X   Adam parameters (0.9, 0.999, 1e-8)\n"
"  --schedule constant|cosine    learning-rate schedule (default constant)\n"
"  --warmup N             linear warm-up over the first N steps (default 0)\n"
"  --lr-min X             final learning rate of the cosine schedule (default 0)\n"
"  --seed N               seed of initialisation and data order (default 1)\n"
"  --max-steps N          stop after N steps in total (default: all epochs)\n"
"  --augment-crop P       training images: pad by P pixels (zeros) and crop back at a random\n"
"                         offset; --augment-flip: mirror left-right with probability 1/2;\n"
"                         both drawn from (seed, step, sample index), never from the rank\n"
"Ranks and determinism:\n"
"  --deterministic        bit-identical results on any rank count P dividing V\n"
"  --virtual-shards V     shards of each global batch in deterministic mode (default 8,\n"
"                         a power of two; the batch must be divisible by V)\n"
"  --bucket-mb X          gradient all-reduce bucket size in MiB (default 4)\n"
"  --comm auto|nccl|mpi   how GPU ranks sum gradients (default auto: NCCL with the cuda\n"
"                         backend on several ranks when built with it, else MPI; one rank\n"
"                         sums nothing; deterministic mode: MPI).\n"
"                         Node-local rank r uses visible GPU r mod the GPUs it sees.\n"
"                         auto and nccl need one GPU per rank (two ranks on one GPU is an\n"
"                         error); mpi stages GPU buffers through pinned host memory and\n"
"                         lets ranks share GPUs (for testing)\n"
"  --comm-timeout S       end the job when a wait for the other ranks (gradient all-reduce,\n"
"                         evaluation and loss sums, the signal check, the outcome of set-up,\n"
"                         a checkpoint write or a resume) lasts longer than S seconds: a\n"
"                         stuck or dead rank (default 300)\n"
"  --check-sync N         compare a parameter digest across ranks every N steps (default 0:\n"
"                         at start and end only)\n"
"Checkpoints (HDF5; README \"Checkpoints\"):\n"
"  --checkpoint-dir DIR   write checkpoints here (at the end, on SIGTERM/SIGUSR1, and as below)\n"
"  --checkpoint-every N   every N steps; 'Ne' for every N epochs (default: end and signals only)\n"
"  --keep K               keep the newest K checkpoints (default 3; 0 keeps all)\n"
"  --resume latest|FILE   continue from FILE, or the newest checkpoint of --checkpoint-dir\n"
"                         (latest with none yet starts fresh); the rank count may differ\n"
"  --eval                 evaluate the --resume checkpoint on --data's test split, no training\n"
"Devices and output:\n"
"  --device cpu|cuda|auto (default auto: CUDA when built and a GPU is visible, else CPU)\n"
"  --precision fp32|tf32|bf16  GEMM arithmetic (default fp32). tf32/bf16 round the GEMM\n"
"                         operands (10-/7-bit mantissa), sum in fp32; weights, gradients and\n"
"                         optimizer state stay fp32. Fast on CUDA tensor cores; the CPU\n"
"                         backend emulates them exactly, a little slower than fp32\n"
"  --data-on-device auto|off  auto: keep the dataset in device memory when it fits (half\n"
"                         the free memory) and gather each batch there (default auto)\n"
"  --prefetch on|off      batches not gathered on the device: a thread assembles the next\n"
"                         one while the step computes (default on)\n"
"  --cuda-graph on|off    record the step's forward/backward once, replay it (one rank,\n"
"                         fast mode, data on the device, no dropout; default on; the cpu\n"
"                         backend has no graphs and ignores it). Same bits either way\n"
"  --threads N            CPU threads per rank: BLAS's, and the conv layers split the batch\n"
"                         across them (default: cores / ranks on the node; 1 in\n"
"                         deterministic mode)\n"
"  --eval-batch N         evaluation chunk size (default 1000)\n"
"  --metrics FILE         JSON lines: one object per epoch and a final one\n"
"  --progress-seconds X   seconds between progress lines (default 1 on a terminal, 15 otherwise)\n"
"  --quiet                only the final lines\n"
"Benchmark:\n"
"  --bench                time training steps on synthetic data (no --data needed)\n"
"  --steps N              timed steps (default 30); --bench-warmup N untimed (default 3)\n"
"\n"
"  -h, --help             this text;  --version  the version\n"
"Exit codes: 0 done, 1 runtime error (message names the file/option), 2 usage error,\n"
"  3 stopped by SIGTERM/SIGUSR1 with a checkpoint written (resume with --resume latest),\n"
"  4 stopped by a signal without --checkpoint-dir (nothing saved).\n";

enum {
    O_DATA = 256, O_MODEL, O_EPOCHS, O_BATCH, O_BPR, O_LR, O_LR_SCALING, O_LR_REF, O_OPTIM,
    O_MOMENTUM, O_NESTEROV, O_WD, O_BETA1, O_BETA2, O_EPS, O_SCHEDULE, O_WARMUP, O_LR_MIN,
    O_SEED, O_MAX_STEPS, O_DET, O_VSHARDS, O_BUCKET, O_CHECK_SYNC, O_DEVICE, O_THREADS,
    O_EVAL_BATCH, O_METRICS, O_PROGRESS, O_QUIET, O_BENCH, O_STEPS, O_BENCH_WARMUP, O_VERSION,
    O_CKPT_DIR, O_CKPT_EVERY, O_KEEP, O_RESUME, O_EVAL, O_AUG_CROP, O_AUG_FLIP, O_COMM, O_COMM_TIMEOUT,
    O_PRECISION, O_DATA_ON_DEVICE, O_PREFETCH, O_CUDA_GRAPH,
};

static const struct option long_[] = {
    {"data", required_argument, 0, O_DATA}, {"model", required_argument, 0, O_MODEL},
    {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
    {"batch-per-rank", required_argument, 0, O_BPR}, {"lr", required_argument, 0, O_LR},
    {"lr-scaling", required_argument, 0, O_LR_SCALING}, {"lr-ref-batch", required_argument, 0, O_LR_REF},
    {"optim", required_argument, 0, O_OPTIM}, {"momentum", required_argument, 0, O_MOMENTUM},
    {"nesterov", no_argument, 0, O_NESTEROV}, {"weight-decay", required_argument, 0, O_WD},
    {"beta1", required_argument, 0, O_BETA1}, {"beta2", required_argument, 0, O_BETA2},
    {"eps", required_argument, 0, O_EPS}, {"schedule", required_argument, 0, O_SCHEDULE},
    {"warmup", required_argument, 0, O_WARMUP}, {"lr-min", required_argument, 0, O_LR_MIN},
    {"seed", required_argument, 0, O_SEED}, {"max-steps", required_argument, 0, O_MAX_STEPS},
    {"deterministic", no_argument, 0, O_DET}, {"virtual-shards", required_argument, 0, O_VSHARDS},
    {"bucket-mb", required_argument, 0, O_BUCKET}, {"check-sync", required_argument, 0, O_CHECK_SYNC},
    {"device", required_argument, 0, O_DEVICE}, {"threads", required_argument, 0, O_THREADS},
    {"eval-batch", required_argument, 0, O_EVAL_BATCH}, {"metrics", required_argument, 0, O_METRICS},
    {"progress-seconds", required_argument, 0, O_PROGRESS}, {"quiet", no_argument, 0, O_QUIET},
    {"bench", no_argument, 0, O_BENCH}, {"steps", required_argument, 0, O_STEPS},
    {"bench-warmup", required_argument, 0, O_BENCH_WARMUP},
    {"augment-crop", required_argument, 0, O_AUG_CROP}, {"augment-flip", no_argument, 0, O_AUG_FLIP}, {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, O_VERSION}, {"checkpoint-dir", required_argument, 0, O_CKPT_DIR},
    {"checkpoint-every", required_argument, 0, O_CKPT_EVERY}, {"keep", required_argument, 0, O_KEEP},
    {"resume", required_argument, 0, O_RESUME}, {"eval", no_argument, 0, O_EVAL},
    {"comm", required_argument, 0, O_COMM}, {"comm-timeout", required_argument, 0, O_COMM_TIMEOUT},
    {"precision", required_argument, 0, O_PRECISION},
    {"data-on-device", required_argument, 0, O_DATA_ON_DEVICE}, {"prefetch", required_argument, 0, O_PREFETCH},
    {"cuda-graph", required_argument, 0, O_CUDA_GRAPH}, {0, 0, 0, 0},
};

static enum dlfs_status bad_(const char *opt, const char *val, const char *want)
{
    return dlfs_error_set(DLFS_ERR_USAGE, "--%s '%s': %s", opt, val, want);
}

static enum dlfs_status int_(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return bad_(opt, s, "expected an integer");
    if (v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "must be between %ld and %ld", lo, hi);
        return bad_(opt, s, want);
    }
    *out = v;
    return DLFS_OK;
}

static enum dlfs_status real_(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return bad_(opt, s, "expected a number");
    if (v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "must be between %g and %g", lo, hi);
        return bad_(opt, s, want);
    }
    *out = v;
    return DLFS_OK;
}

static enum dlfs_status choice_(const char *opt, const char *s, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) { *out = i; return DLFS_OK; }
    char want[128] = "expected one of:";
    for (int i = 0; i < n; i++) {
        strncat(want, " ", sizeof want - strlen(want) - 1);
        strncat(want, names[i], sizeof want - strlen(want) - 1);
    }
    return bad_(opt, s, want);
}

const char *dlfs_optim_name(enum dlfs_optim o)
{
    static const char *n[] = {"sgd", "adam", "adamw"};
    return n[o];
}

enum dlfs_status dlfs_options_parse(struct dlfs_options *o, int argc, char **argv, int rank,
                                    bool *exit_now)
{
    static const char *const optims[] = {"sgd", "adam", "adamw"};
    static const char *const scheds[] = {"constant", "cosine"};
    static const char *const scalings[] = {"none", "linear"};
    static const char *const devices[] = {"cpu", "cuda", "auto"};
    static const char *const comms[] = {"auto", "mpi", "nccl"}; /* enum dlfs_comm_path order */
    static const char *const precisions[] = {"fp32", "tf32", "bf16"}; /* enum dlfs_precision order */
    static const char *const autooff[] = {"off", "auto"};
    static const char *const onoff[] = {"off", "on"};
    memset(o, 0, sizeof *o);
    o->model = "mlp";
    o->epochs = 10;
    o->optim = DLFS_OPTIM_ADAM;
    o->lr = -1; /* optimizer default */
    o->momentum = 0.9;
    o->weight_decay = -1;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->lr_ref_batch = 128;
    o->seed = 1;
    o->device = DLFS_DEVICE_AUTO;
    o->eval_batch = 1000;
    o->virtual_shards = 8;
    o->bucket_mb = 4.0;
    o->comm = DLFS_COMM_PATH_AUTO;
    o->comm_timeout = 300.0;
    o->steps = 30;
    o->bench_warmup = 3;
    o->keep = 3;
    o->data_on_device = true;
    o->prefetch = true;
    o->cuda_graph = -1;
    *exit_now = false;

    optind = 1;
    opterr = 0;
    int c, choice;
    long iv;
    while ((c = getopt_long(argc, argv, ":h", long_, NULL)) != -1) {
        const char *a = optarg;
        const char *name = "";
        for (const struct option *p = long_; p->name; p++)
            if (p->val == c) name = p->name;
        switch (c) {
        case 'h':
            if (rank == 0) fputs(usage_, stdout);
            *exit_now = true;
            return DLFS_OK;
        case O_VERSION:
            if (rank == 0) printf("dlfs-train %s\n", DLFS_VERSION);
            *exit_now = true;
            return DLFS_OK;
        case O_DATA: o->data = a; break;
        case O_MODEL: o->model = a; break;
        case O_EPOCHS: DLFS_TRY(int_(name, a, 1, 100000, &iv)); o->epochs = (int)iv; break;
        case O_BATCH: DLFS_TRY(int_(name, a, 1, 1 << 24, &iv)); o->batch = (int)iv; break;
        case O_BPR: DLFS_TRY(int_(name, a, 1, 1 << 24, &iv)); o->batch_per_rank = (int)iv; break;
        case O_LR: DLFS_TRY(real_(name, a, 1e-12, 100.0, &o->lr)); break;
        case O_LR_SCALING: DLFS_TRY(choice_(name, a, scalings, 2, &choice)); o->lr_scaling = choice; break;
        case O_LR_REF: DLFS_TRY(int_(name, a, 1, 1 << 24, &iv)); o->lr_ref_batch = (int)iv; break;
        case O_OPTIM: DLFS_TRY(choice_(name, a, optims, 3, &choice)); o->optim = choice; break;
        case O_MOMENTUM: DLFS_TRY(real_(name, a, 0.0, 0.9999, &o->momentum)); break;
        case O_NESTEROV: o->nesterov = true; break;
        case O_AUG_CROP: DLFS_TRY(int_(name, a, 0, 64, &iv)); o->augment_crop = (int)iv; break;
        case O_AUG_FLIP: o->augment_flip = true; break;
        case O_WD: DLFS_TRY(real_(name, a, 0.0, 10.0, &o->weight_decay)); break;
        case O_BETA1: DLFS_TRY(real_(name, a, 0.0, 0.999999, &o->beta1)); break;
        case O_BETA2: DLFS_TRY(real_(name, a, 0.0, 0.999999999, &o->beta2)); break;
        case O_EPS: DLFS_TRY(real_(name, a, 1e-30, 1.0, &o->eps)); break;
        case O_SCHEDULE: DLFS_TRY(choice_(name, a, scheds, 2, &choice)); o->schedule = choice; break;
        case O_WARMUP: DLFS_TRY(int_(name, a, 0, 100000000, &iv)); o->warmup = (int)iv; break;
        case O_LR_MIN: DLFS_TRY(real_(name, a, 0.0, 100.0, &o->lr_min)); break;
        case O_SEED: DLFS_TRY(int_(name, a, 0, 0x7fffffffL, &iv)); o->seed = (uint64_t)iv; break;
        case O_MAX_STEPS: DLFS_TRY(int_(name, a, 1, 1000000000L, &iv)); o->max_steps = iv; break;
        case O_DET: o->deterministic = true; break;
        case O_VSHARDS: DLFS_TRY(int_(name, a, 1, 4096, &iv)); o->virtual_shards = (int)iv; break;
        case O_BUCKET: DLFS_TRY(real_(name, a, 0.0, 65536.0, &o->bucket_mb)); break;
        case O_CHECK_SYNC: DLFS_TRY(int_(name, a, 0, 1000000000L, &iv)); o->check_sync = (int)iv; break;
        case O_COMM: DLFS_TRY(choice_(name, a, comms, 3, &choice)); o->comm = choice; break;
        case O_COMM_TIMEOUT: DLFS_TRY(real_(name, a, 0.001, 1e7, &o->comm_timeout)); break;
        case O_DEVICE: DLFS_TRY(choice_(name, a, devices, 3, &choice)); o->device = choice; break;
        case O_PRECISION: DLFS_TRY(choice_(name, a, precisions, 3, &choice)); o->precision = choice; break;
        case O_THREADS: DLFS_TRY(int_(name, a, 1, 1024, &iv)); o->threads = (int)iv; break;
        case O_EVAL_BATCH: DLFS_TRY(int_(name, a, 1, 1 << 20, &iv)); o->eval_batch = (int)iv; break;
        case O_METRICS: o->metrics = a; break;
        case O_PROGRESS: DLFS_TRY(real_(name, a, 0.0, 1e6, &o->progress_s)); break;
        case O_QUIET: o->quiet = true; break;
        case O_BENCH: o->bench = true; break;
        case O_STEPS: DLFS_TRY(int_(name, a, 1, 1000000, &iv)); o->steps = (int)iv; break;
        case O_BENCH_WARMUP: DLFS_TRY(int_(name, a, 0, 1000000, &iv)); o->bench_warmup = (int)iv; break;
        case O_CKPT_DIR: o->checkpoint_dir = a; break;
        case O_CKPT_EVERY: {
            size_t len = strlen(a);
            char num[32];
            int epochs = len > 1 && len < sizeof num && (a[len - 1] == 'e');
            snprintf(num, sizeof num, "%.*s", (int)(epochs ? len - 1 : len), a);
            if (int_(name, num, 1, 1000000000L, &iv) != DLFS_OK) {
                dlfs_error_clear();
                return bad_(name, a, "expected a number of steps, or of epochs with the suffix e (e.g. 500 or 1e)");
            }
            if (epochs) o->checkpoint_every_epochs = (int)iv;
            else o->checkpoint_every = iv;
            break;
        }
        case O_KEEP: DLFS_TRY(int_(name, a, 0, 1000000, &iv)); o->keep = (int)iv; break;
        case O_RESUME: o->resume = a; break;
        case O_EVAL: o->eval_only = true; break;
        case O_DATA_ON_DEVICE: DLFS_TRY(choice_(name, a, autooff, 2, &choice)); o->data_on_device = choice; break;
        case O_PREFETCH: DLFS_TRY(choice_(name, a, onoff, 2, &choice)); o->prefetch = choice; break;
        case O_CUDA_GRAPH: DLFS_TRY(choice_(name, a, onoff, 2, &choice)); o->cuda_graph = choice; break;
        case ':':
            return dlfs_error_set(DLFS_ERR_USAGE, "option '%s' needs a value (see --help)", argv[optind - 1]);
        default:
            return dlfs_error_set(DLFS_ERR_USAGE, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return dlfs_error_set(DLFS_ERR_USAGE, "unexpected argument '%s' (options start with --; see --help)",
                              argv[optind]);
    if (o->batch && o->batch_per_rank)
        return dlfs_error_set(DLFS_ERR_USAGE, "give either --batch (global) or --batch-per-rank, not both");
    if (!o->batch && !o->batch_per_rank) o->batch = 128;
    if (o->lr < 0) o->lr = o->optim == DLFS_OPTIM_SGD ? 0.05 : 1e-3;
    if (o->weight_decay < 0) o->weight_decay = o->optim == DLFS_OPTIM_ADAMW ? 0.01 : 0.0;
    if (o->nesterov && o->optim != DLFS_OPTIM_SGD)
        return dlfs_error_set(DLFS_ERR_USAGE, "--nesterov applies to --optim sgd only");
    if (o->resume && strcmp(o->resume, "latest") == 0 && !o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_USAGE, "--resume latest needs --checkpoint-dir DIR to look in");
    if ((o->checkpoint_every || o->checkpoint_every_epochs) && !o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_USAGE, "--checkpoint-every needs --checkpoint-dir DIR");
    if (o->eval_only && !o->resume)
        return dlfs_error_set(DLFS_ERR_USAGE, "--eval needs --resume FILE (the checkpoint to evaluate)");
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

/* The pipeline options (--data-on-device, --prefetch, --cuda-graph) are left out
 * on purpose: they change no bits, so ranks and resumed runs may differ in them. */
void dlfs_options_describe(const struct dlfs_options *o, char *buf, size_t len)
{
    snprintf(buf, len,
        "data=%s;model=%s;epochs=%d;batch=%d;batch_per_rank=%d;lr=%.17g;optim=%s;momentum=%.17g;"
        "weight_decay=%.17g;beta1=%.17g;beta2=%.17g;eps=%.17g;nesterov=%d;schedule=%d;warmup=%d;lr_min=%.17g;"
        "lr_scaling=%d;lr_ref_batch=%d;seed=%llu;device=%d;max_steps=%ld;eval_batch=%d;deterministic=%d;"
        "virtual_shards=%d;check_sync=%d;bucket_mb=%.17g;bench=%d;steps=%d;bench_warmup=%d;metrics=%d;"
        "checkpoint_dir=%s;checkpoint_every=%ld;checkpoint_every_epochs=%d;keep=%d;resume=%s;eval=%d;"
        "augment_crop=%d;augment_flip=%d;comm=%s;precision=%s",
        o->data ? o->data : "", o->model, o->epochs, o->batch, o->batch_per_rank, o->lr, dlfs_optim_name(o->optim),
        o->momentum, o->weight_decay, o->beta1, o->beta2, o->eps, o->nesterov, o->schedule, o->warmup,
        o->lr_min, o->lr_scaling, o->lr_ref_batch, (unsigned long long)o->seed, o->device, o->max_steps,
        o->eval_batch, o->deterministic, o->virtual_shards, o->check_sync, o->bucket_mb, o->bench,
        o->steps, o->bench_warmup, o->metrics != NULL, o->checkpoint_dir ? o->checkpoint_dir : "",
        o->checkpoint_every, o->checkpoint_every_epochs, o->keep, o->resume ? o->resume : "", o->eval_only,
        o->augment_crop, (int)o->augment_flip, dlfs_comm_path_name(o->comm), dlfs_precision_name(o->precision));
}

uint64_t dlfs_options_digest(const struct dlfs_options *o)
{
    char buf[4096];
    dlfs_options_describe(o, buf, sizeof buf);
    struct dlfs_sha256 s;
    uint8_t d[32];
    dlfs_sha256_init(&s);
    dlfs_sha256_update(&s, buf, strlen(buf));
    dlfs_sha256_final(&s, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | d[i];
    return v;
}
