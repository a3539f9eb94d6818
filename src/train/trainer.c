/* The training loop: epochs, progress lines, evaluation (per epoch, every
 * --eval-every steps, --target-acc), metrics, periodic and signal-driven
 * checkpoints; and --eval of a checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hooks.h"
#include "core/trace.h"
#include "dlfs/util.h"
#include "train/train-impl.h"

/* The loop's state between steps. */
struct loop_ {
    long steps_per_epoch;
    int epoch0;
    long sample0;                 /* where a resumed run starts in its first epoch */
    int pos_epoch;
    long pos_samples;             /* the data position after the last step */
    long last_saved;              /* step of the newest checkpoint (-1 none) */
    double test_loss, test_acc;   /* the last evaluation (NAN before one) */
    long evaluated;               /* the step it was taken at (-1 none) */
    double t_start;               /* when training began (this invocation) */
    double best_acc;
    char *last_path;              /* the newest checkpoint written or resumed from (finite by construction) */
    int reached;                  /* --target-acc reached */
    long reach_step;
    double reach_s;
    int tty;
    double every;                 /* seconds between progress lines */
};

/* Test hook DLFS_FAULT_PERTURB: one rank nudges one parameter after a step, so
 * that the --check-sync test can prove divergence is caught. */
static void fault_perturb_(struct dlfs_run *r)
{
    if (!dlfs_hook_at(DLFS_HOOK_PERTURB, r->comm->rank, r->step)) return;
    float v;
    r->be->to_host(&v, r->params, sizeof v);
    v += 1e-3f;
    r->be->to_device(r->params, &v, sizeof v);
}

static void banner_(const struct dlfs_run *r, long steps_per_epoch)
{
    const struct dlfs_options *o = r->o;
    char ranks[160];
    if (strcmp(dlfs_run_comm_name(r), "none") != 0)
        snprintf(ranks, sizeof ranks, "%d rank(s) on %s, gradients summed by %s", r->comm->size, r->comm->host,
                 dlfs_run_comm_name(r));
    else snprintf(ranks, sizeof ranks, "%d rank on %s (no gradients to exchange)", r->comm->size, r->comm->host);
    printf("dlfs-train %s: %s backend (%s GEMMs), %s; model %s (%zu parameters)\n", DLFS_VERSION, r->be->name,
           dlfs_precision_name(o->precision), ranks, r->model.spec, r->n);
    char micro[64] = "";
    if (o->accum_steps > 1)
        snprintf(micro, sizeof micro, " in %d micro-batches of %d", o->accum_steps, r->local_batch / o->accum_steps);
    printf("data %s: %zu train / %zu test samples; batch %d global (%d per rank%s%s), %ld steps/epoch\n",
           r->ds.path, r->ds.train.n, r->ds.test.n, r->global_batch, r->local_batch, micro,
           o->deterministic ? ", deterministic" : "", steps_per_epoch);
    printf("optimizer %s, lr %g (%s%s), seed %llu\n", dlfs_optim_name(o->optim), dlfs_optim_base_lr(&r->opt),
           o->schedule == DLFS_SCHED_COSINE ? "cosine" : "constant", o->warmup ? " after warm-up" : "",
           (unsigned long long)o->seed);
    printf("pipeline: %s; evaluation in chunks of %d %s (--eval-batch)\n", r->pipeline,
           dlfs_batcher_rows(&r->batcher), r->model.positions > 1 ? "windows" : "samples");
    const double mib = (double)dlfs_optim_state_bytes(&r->opt) / 1048576.0;
    if (o->zero && r->comm->size > 1)
        printf("optimizer state: %.1f MiB on this rank (ZeRO-1: %zu of %zu parameters' moments)\n", mib,
               dlfs_optim_shard(&r->opt)->total, r->n);
    if (o->target_acc > 0) printf("target: test accuracy %.2f%%\n", 100 * o->target_acc);
    fflush(stdout);
}

/* Whether progress lines may rewrite one line with \r: only on a terminal that is the
 * user's. Under a launcher (mpirun, srun, mpiexec) the rank's terminal is the
 * launcher's pseudo-terminal, whatever mpirun's own output goes to (a log file
 * would fill with \r-joined lines): plain lines then. */
static int console_tty_(void)
{
    static const char *const launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                           "SLURM_STEP_ID"};
    for (size_t i = 0; i < sizeof launched / sizeof *launched; i++)
        if (getenv(launched[i])) return 0;
    return isatty(STDOUT_FILENO);
}

static void progress_(const struct dlfs_run *r, const struct loop_ *L, int epoch, long s, long s0, double loss,
                      double t0)
{
    const double el = dlfs_now() - t0;
    const double sps = el > 0 ? (double)(s - s0) * r->global_batch / el : 0.0;
    const double eta = s > s0 ? el / (s - s0) * (double)(L->steps_per_epoch - s) : 0.0;
    char line[160];
    snprintf(line, sizeof line, "  epoch %d  step %ld/%ld  loss %.4f  %.0f samples/s  ETA %.0f s", epoch, s,
             L->steps_per_epoch, loss, sps, eta);
    /* on a terminal, rewrite one line (padded: the next line starts with \r) */
    if (L->tty) printf("\r%-100s", line);
    else printf("%s\n", line);
    fflush(stdout);
}

/* Training diverged (`what` became non-finite at step `step`, 1-based): one error
 * naming the step and the newest finite checkpoint, which stays (nothing
 * non-finite is ever written). */
static enum dlfs_status diverged_(struct dlfs_run *r, const struct loop_ *L, const char *what, long step)
{
    dlfs_error_clear();
    char where[600] = "no checkpoint was written: nothing to resume from";
    if (L->last_path)
        snprintf(where, sizeof where, "the newest finite checkpoint, %s, is kept: continue from it with --resume %s",
                 L->last_path, L->last_path);
    return dlfs_error_set(DLFS_ERR_NUMERIC, "training diverged: %s became non-finite (NaN or Inf) at step %ld; %s, "
                          "and a lower --lr (now %g) or --warmup", what, step, where, dlfs_optim_base_lr(&r->opt));
}

/* Save and report (rank 0). */
static enum dlfs_status save_(struct dlfs_run *r, struct loop_ *L, char **path)
{
    char *p = NULL;
    const int span = dlfs_tracer_begin(r, "checkpoint");
    dlfs_signal_defer(1); /* a signal now must not end the others' wait for rank 0's write */
    const enum dlfs_status st = dlfs_run_save(r, L->pos_epoch, L->pos_samples, &p);
    dlfs_signal_defer(0);
    dlfs_trace_end(span);
    if (st == DLFS_ERR_NUMERIC) return diverged_(r, L, "the parameters to save", r->step);
    DLFS_TRY(st);
    L->last_saved = r->step;
    if (p && !r->o->quiet) {
        printf("checkpoint %s (step %ld)\n", p, r->step);
        fflush(stdout);
    }
    if (p) {
        free(L->last_path);
        L->last_path = strdup(p);
    }
    if (path) *path = p;
    else free(p);
    return DLFS_OK;
}

/* Per-step flags the ranks agree on (one bitwise OR): a stop signal, by name, and a
 * non-finite loss. */
#define FLAG_SIGTERM_ 1
#define FLAG_SIGUSR1_ 2
#define FLAG_OTHER_SIGNAL_ 4
#define FLAG_NONFINITE_ 8
#define FLAG_SIGINT_ 16

static enum dlfs_status interrupted_(struct dlfs_run *r, struct loop_ *L, int flags)
{
    /* the name of the signal any rank got (SIGTERM first), not just rank 0's */
    const char *name = flags & FLAG_SIGTERM_ ? "SIGTERM" : flags & FLAG_SIGUSR1_ ? "SIGUSR1"
                     : flags & FLAG_SIGINT_  ? "SIGINT (Ctrl-C)" : "a signal";
    if (!r->o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_INTERRUPTED, "stopped by %s at step %ld; nothing saved (no "
                              "--checkpoint-dir)", name, r->step);
    char *path = NULL;
    DLFS_TRY(save_(r, L, &path));
    const enum dlfs_status st = dlfs_error_set(DLFS_ERR_INTERRUPTED, "stopped by %s at step %ld: checkpoint %s "
                                               "written; continue with --resume latest", name, r->step,
                                               path ? path : "");
    free(path);
    return st;
}

/* Evaluate on the test split; with --target-acc, note when it is first reached
 * (every rank gets the same summed accuracy, so every rank decides alike). */
static void evaluate_(struct dlfs_run *r, struct loop_ *L, int epoch, int print)
{
    const struct dlfs_options *o = r->o;
    const int span = dlfs_tracer_begin(r, "evaluate");
    dlfs_run_evaluate(r, &r->ds.test, &L->test_loss, &L->test_acc);
    dlfs_trace_end(span);
    L->evaluated = r->step;
    const double elapsed = dlfs_now() - L->t_start;
    if (L->test_acc > L->best_acc) L->best_acc = L->test_acc;
    if (o->target_acc > 0 && !L->reached && L->test_acc >= o->target_acc) {
        L->reached = 1;
        L->reach_step = r->step;
        L->reach_s = elapsed;
    }
    if (print && r->comm->rank == 0 && !o->quiet) {
        if (L->tty) printf("\r%100s\r", "");
        printf("  eval at step %ld: test_loss %.4f  test_acc %6.2f%%  (%.1f s)\n", r->step, L->test_loss,
               100 * L->test_acc, elapsed);
        fflush(stdout);
    }
    if (r->metrics && (o->eval_every || o->target_acc > 0)) {
        fprintf(r->metrics, "{\"event\": \"eval\", \"epoch\": %d, \"step\": %ld, \"test_loss\": %.6f, "
                "\"test_acc\": %.6f, \"elapsed_s\": %.4f}\n", epoch, r->step, L->test_loss, L->test_acc, elapsed);
        fflush(r->metrics);
    }
}

/* After each step: position, checks, signals and divergence, checkpoints,
 * evaluation. `loss` is the loss sum the step returned (with the loss lag, the
 * step before's). */
static enum dlfs_status after_step_(struct dlfs_run *r, struct loop_ *L, int epoch, long s, double loss)
{
    const struct dlfs_options *o = r->o;
    fault_perturb_(r);
    if (s + 1 == L->steps_per_epoch) {
        L->pos_epoch = epoch + 1;
        L->pos_samples = 0;
    } else {
        L->pos_epoch = epoch;
        L->pos_samples = (s + 1) * r->global_batch;
    }
    if (o->check_sync && r->step % o->check_sync == 0) DLFS_TRY(dlfs_run_check_sync(r));
    const int sig = dlfs_signal_pending();
    int flags = sig == SIGTERM ? FLAG_SIGTERM_ : sig == SIGUSR1 ? FLAG_SIGUSR1_ : sig == SIGINT ? FLAG_SIGINT_
              : sig ? FLAG_OTHER_SIGNAL_ : 0;
    if (!isfinite(loss)) flags |= FLAG_NONFINITE_;
    flags = dlfs_comm_or(r->comm, flags);
    if (flags & FLAG_NONFINITE_) return diverged_(r, L, "the loss", r->step - dlfs_pipeline_pending(&r->pipe));
    if (flags) return interrupted_(r, L, flags);
    if (o->checkpoint_every && r->step % o->checkpoint_every == 0) DLFS_TRY(save_(r, L, NULL));
    if (o->eval_every && r->step % o->eval_every == 0 && s + 1 < L->steps_per_epoch) evaluate_(r, L, epoch, 1);
    return DLFS_OK;
}

/* The steps of one epoch (from step s0 of it); their loss sum and count. */
static enum dlfs_status epoch_steps_(struct dlfs_run *r, struct loop_ *L, int epoch, long s0, double *loss_sum,
                                     long *done)
{
    const int verbose = r->comm->rank == 0 && !r->o->quiet;
    const double t0 = dlfs_now();
    double last_print = t0;
    enum dlfs_status st = DLFS_OK;
    long s;
    dlfs_batcher_epoch(&r->batcher, epoch);
    for (s = s0; s < L->steps_per_epoch && r->step < r->total_steps && !L->reached; s++) {
        const struct dlfs_batch bt = dlfs_batcher_at(&r->batcher, s, r->step);
        const double loss = dlfs_run_step(r, &bt);
        *loss_sum += loss;
        if ((st = after_step_(r, L, epoch, s, loss)) != DLFS_OK) {
            s++;
            break;
        }
        /* with the loss lag (dlfs_run_step) loss_sum holds one step fewer */
        const long summed = s + 1 - s0 - dlfs_pipeline_pending(&r->pipe);
        if (verbose && summed > 0 && dlfs_now() - last_print >= L->every) {
            progress_(r, L, epoch, s + 1, s0, *loss_sum / ((double)summed * r->local_batch), t0);
            last_print = dlfs_now();
        }
    }
    *loss_sum += dlfs_run_flush(r); /* the last step's loss, when it trails */
    *done = s - s0;
    return st;
}

/* End of an epoch: the epoch's loss across ranks, evaluation, the epoch line and
 * metrics, the per-epoch checkpoint. */
static enum dlfs_status end_epoch_(struct dlfs_run *r, struct loop_ *L, int epoch, double loss_sum, long steps,
                                   double train_time)
{
    const struct dlfs_options *o = r->o;
    double sums[1] = {loss_sum};
    dlfs_comm_allreduce_f64(r->comm, sums, 1);
    const double samples = (double)steps * r->global_batch;
    const double train_loss = samples > 0 ? sums[0] / samples : NAN;
    if (samples > 0 && !isfinite(train_loss)) return diverged_(r, L, "the epoch's loss", r->step);
    if (L->evaluated != r->step) evaluate_(r, L, epoch, 0);
    const struct dlfs_times t = dlfs_run_times(r);
    const double sps = samples / train_time, tsum = t.compute + t.comm + t.data + 1e-30;
    if (r->comm->rank == 0 && !o->quiet) {
        if (L->tty) printf("\r%100s\r", "");
        printf("epoch %3d/%d  train_loss %.4f  test_loss %.4f  test_acc %6.2f%%  %.2f s  %.0f samples/s"
               "  [compute %.0f%% comm-wait %.0f%% data %.0f%%]\n", epoch, o->epochs, train_loss, L->test_loss,
               100 * L->test_acc, train_time, sps, 100 * t.compute / tsum, 100 * t.comm / tsum, 100 * t.data / tsum);
        fflush(stdout);
    }
    if (r->metrics) {
        fprintf(r->metrics, "{\"epoch\": %d, \"step\": %ld, \"train_loss\": %.6f, \"test_loss\": %.6f, "
                "\"test_acc\": %.6f, \"samples_per_s\": %.1f, \"epoch_time_s\": %.4f, \"compute_s\": %.4f, "
                "\"comm_wait_s\": %.4f, \"data_s\": %.4f, \"lr\": %.6g, \"ranks\": %d, \"prefetched\": %ld, "
                "\"batch\": %d, \"steps\": %ld}\n", epoch, r->step, train_loss, L->test_loss, L->test_acc, sps, train_time,
                t.compute, t.comm, t.data, dlfs_optim_step_lr(&r->opt, r->step > 0 ? r->step - 1 : 0), r->comm->size,
                dlfs_batcher_prefetched(&r->batcher), r->global_batch, steps);
        fflush(r->metrics);
    }
    if (o->checkpoint_every_epochs && epoch % o->checkpoint_every_epochs == 0 && L->last_saved != r->step)
        return save_(r, L, NULL);
    return DLFS_OK;
}

/* The run's end: sync check, last checkpoint, digest, final lines and metrics. */
static enum dlfs_status finish_(struct dlfs_run *r, struct loop_ *L)
{
    const struct dlfs_options *o = r->o;
    DLFS_TRY(dlfs_run_check_sync(r));
    const long planned = L->steps_per_epoch * o->epochs;
    if (r->comm->rank == 0 && !o->quiet && o->max_steps && r->step >= o->max_steps && o->max_steps < planned &&
        !L->reached) {
        printf("--max-steps %ld reached: stopped at step %ld of the %ld that --epochs %d would take\n", o->max_steps,
               r->step, planned, o->epochs);
        fflush(stdout);
    }
    if (o->checkpoint_dir && L->last_saved != r->step) DLFS_TRY(save_(r, L, NULL));
    if (L->evaluated != r->step) evaluate_(r, L, L->pos_epoch, 0);
    DLFS_TRY(dlfs_tracer_write(r));
    char hex[65], target[160] = "";
    dlfs_run_digest(r, hex);
    if (o->target_acc > 0)
        snprintf(target, sizeof target, ", \"target_acc\": %.6f, \"target_reached\": %s, \"steps_to_target\": %ld, "
                 "\"time_to_target_s\": %.4f", o->target_acc, L->reached ? "true" : "false",
                 L->reached ? L->reach_step : -1, L->reached ? L->reach_s : -1.0);
    if (r->metrics) {
        fprintf(r->metrics, "{\"event\": \"final\", \"epoch\": %d, \"step\": %ld, \"test_loss\": %.6f, "
                "\"test_acc\": %.6f, \"params_sha256\": \"%s\", \"ranks\": %d, \"model\": \"%s\", "
                "\"comm\": \"%s\", \"backend\": \"%s\", \"precision\": \"%s\", \"cuda_graph\": \"%s\"%s}\n",
                L->pos_epoch > o->epochs ? o->epochs : L->pos_epoch, r->step, L->test_loss, L->test_acc, hex,
                r->comm->size, r->model.spec, dlfs_run_comm_name(r), r->be->name, dlfs_precision_name(o->precision),
                dlfs_pipeline_graph_state(&r->pipe), target);
        if (fflush(r->metrics) != 0) return dlfs_error_set(DLFS_ERR_IO, "--metrics %s: write failed", o->metrics);
    }
    if (r->comm->rank == 0) {
        printf("params_sha256 %s\n", hex);
        printf("test_acc %.2f%% after %ld steps\n", 100 * L->test_acc, r->step);
        if (o->target_acc > 0 && L->reached)
            printf("target_acc %.2f%% reached at step %ld after %.1f s\n", 100 * o->target_acc, L->reach_step,
                   L->reach_s);
        else if (o->target_acc > 0)
            printf("target_acc %.2f%% NOT reached: best %.2f%% in %ld steps\n", 100 * o->target_acc,
                   100 * L->best_acc, r->step);
        fflush(stdout);
    }
    return DLFS_OK;
}

static enum dlfs_status loop_(struct dlfs_run *r, struct loop_ *L)
{
    enum dlfs_status st = DLFS_OK;
    for (int epoch = L->epoch0; epoch <= r->o->epochs && r->step < r->total_steps && !L->reached; epoch++) {
        dlfs_run_times_reset(r);
        const double t0 = dlfs_now();
        const long s0 = epoch == L->epoch0 ? L->sample0 / r->global_batch : 0;
        double loss_sum = 0.0;
        long steps = 0;
        st = epoch_steps_(r, L, epoch, s0, &loss_sum, &steps);
        if (st != DLFS_OK) break;
        if ((st = end_epoch_(r, L, epoch, loss_sum, steps, dlfs_now() - t0)) != DLFS_OK) break;
    }
    return st == DLFS_OK ? finish_(r, L) : st;
}

enum dlfs_status dlfs_train_run(const struct dlfs_options *o, const struct dlfs_comm *comm)
{
    struct dlfs_run run, *r = &run;
    struct loop_ L = {.epoch0 = 1, .last_saved = -1, .test_loss = NAN, .test_acc = NAN, .evaluated = -1,
                      .tty = console_tty_()};
    enum dlfs_status st = dlfs_run_init(r, o, comm, DLFS_RUN_TRAIN);
    if (st == DLFS_OK) {
        L.steps_per_epoch = dlfs_batcher_steps_per_epoch(&r->batcher);
        long total = L.steps_per_epoch * o->epochs;
        if (o->max_steps && o->max_steps < total) total = o->max_steps;
        dlfs_run_plan(r, total);
        if (comm->rank == 0 && !o->quiet) banner_(r, L.steps_per_epoch);
        if (o->resume) st = dlfs_run_resume(r, &L.epoch0, &L.sample0, &L.last_path);
        if (st == DLFS_OK) st = dlfs_run_lineage(r, o->rollback);
        if (L.epoch0 == 0) L.epoch0 = 1; /* nothing resumed */
        L.pos_epoch = L.epoch0;
        L.pos_samples = L.sample0;
        L.last_saved = r->step;
    }
    if (st == DLFS_OK) st = dlfs_run_check_sync(r);
    if (st == DLFS_OK) {
        dlfs_signals_catch_int(comm->rank == 0 && !o->quiet);
        L.every = o->progress_s > 0 ? o->progress_s : L.tty ? 1.0 : 15.0;
        L.t_start = dlfs_now();
        st = loop_(r, &L);
    }
    free(L.last_path);
    return dlfs_run_close(r, st);
}

enum dlfs_status dlfs_eval_run(const struct dlfs_options *o, const struct dlfs_comm *comm)
{
    struct dlfs_run run, *r = &run;
    int epoch = 0;
    long samples = 0;
    enum dlfs_status st = dlfs_run_init(r, o, comm, DLFS_RUN_EVAL);
    if (st == DLFS_OK) st = dlfs_run_resume(r, &epoch, &samples, NULL);
    if (st == DLFS_OK && epoch == 0)
        st = dlfs_error_set(DLFS_ERR_IO, "--eval --resume latest: no checkpoint in %s", o->checkpoint_dir);
    if (st == DLFS_OK) {
        double loss, acc;
        dlfs_run_evaluate(r, &r->ds.test, &loss, &acc);
        char hex[65];
        dlfs_run_digest(r, hex);
        if (r->metrics)
            fprintf(r->metrics, "{\"event\": \"eval\", \"step\": %ld, \"test_loss\": %.6f, \"test_acc\": %.6f, "
                    "\"params_sha256\": \"%s\", \"ranks\": %d, \"model\": \"%s\"}\n", r->step, loss, acc, hex,
                    comm->size, r->model.spec);
        if (comm->rank == 0) {
            printf("eval: %zu test samples of %s at step %ld: test_loss %.4f\n", r->ds.test.n, r->ds.path, r->step,
                   loss);
            printf("params_sha256 %s\n", hex);
            printf("test_acc %.2f%%\n", 100 * acc);
            fflush(stdout);
        }
        if (o->sample) st = dlfs_comm_agree(comm, dlfs_run_sample(r, stdout));
    }
    return dlfs_run_close(r, st);
}
