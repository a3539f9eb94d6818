/* The training loop: epochs, progress lines, per-epoch evaluation, metrics,
 * periodic and signal-driven checkpoints; and --eval of a checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/train-impl.h"
#include "dlfs/sampler.h"
#include "dlfs/util.h"

/* Test hook: DLFS_FAULT_PERTURB="RANK:STEP" nudges one parameter on that rank
 * after that step, so the --check-sync test can prove divergence is caught. */
static void fault_perturb_(struct dlfs_run *r)
{
    const char *f = getenv("DLFS_FAULT_PERTURB");
    int rank, step;
    if (!f || sscanf(f, "%d:%d", &rank, &step) != 2) return;
    if (rank != r->comm->rank || step != r->step) return;
    float v;
    r->be->to_host(&v, r->params, sizeof v);
    v += 1e-3f;
    r->be->to_device(r->params, &v, sizeof v);
}

static void progress_(const struct dlfs_run *r, int epoch, long s, long s0, long steps, double loss, double t0,
                      int tty)
{
    const double el = dlfs_now() - t0;
    const double sps = el > 0 ? (double)(s - s0) * r->global_batch / el : 0.0;
    const double eta = s > s0 ? el / (s - s0) * (double)(steps - s) : 0.0;
    char line[160];
    snprintf(line, sizeof line, "  epoch %d  step %ld/%ld  loss %.4f  %.0f samples/s  ETA %.0f s", epoch, s,
             steps, loss, sps, eta);
    /* on a terminal, rewrite one line (padded: the next line starts with \r) */
    if (tty) printf("\r%-100s", line);
    else printf("%s\n", line);
    fflush(stdout);
}

static void banner_(const struct dlfs_run *r, long steps_per_epoch)
{
    const struct dlfs_options *o = r->o;
    printf("dlfs-train %s: %s backend (%s GEMMs), %d rank(s) on %s, gradients summed by %s; model %s (%zu "
           "parameters)\n", DLFS_VERSION, r->be->name, dlfs_precision_name(o->precision), r->comm->size,
           r->comm->host, dlfs_run_comm_name(r), r->model.spec, r->n);
    printf("data %s: %zu train / %zu test samples; batch %d global (%d per rank%s), %ld steps/epoch\n",
           r->ds.path, r->ds.train.n, r->ds.test.n, r->global_batch, r->local_batch,
           o->deterministic ? ", deterministic" : "", steps_per_epoch);
    printf("optimizer %s, lr %g (%s%s), seed %llu\n", dlfs_optim_name(o->optim), r->lr,
           o->schedule == DLFS_SCHED_COSINE ? "cosine" : "constant", o->warmup ? " after warm-up" : "",
           (unsigned long long)o->seed);
    printf("pipeline: %s\n", r->pipeline);
    fflush(stdout);
}

/* Save and report (rank 0). */
static enum dlfs_status save_(struct dlfs_run *r, int epoch, long samples, long *last_saved, char **path)
{
    char *p = NULL;
    DLFS_TRY(dlfs_run_save(r, epoch, samples, &p));
    *last_saved = r->step;
    if (p && !r->o->quiet) {
        printf("checkpoint %s (step %ld)\n", p, r->step);
        fflush(stdout);
    }
    if (path) *path = p;
    else free(p);
    return DLFS_OK;
}

static enum dlfs_status interrupted_(struct dlfs_run *r, int epoch, long samples, long *last_saved)
{
    const int sig = dlfs_signal_pending();
    const char *name = sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
    if (!r->o->checkpoint_dir)
        return dlfs_error_set(DLFS_ERR_INTERRUPTED, "stopped by %s at step %ld; nothing saved (no "
                              "--checkpoint-dir)", name, r->step);
    char *path = NULL;
    DLFS_TRY(save_(r, epoch, samples, last_saved, &path));
    enum dlfs_status st = dlfs_error_set(DLFS_ERR_INTERRUPTED, "stopped by %s at step %ld: checkpoint %s written; "
                                         "continue with --resume latest", name, r->step, path ? path : "");
    free(path);
    return st;
}

enum dlfs_status dlfs_train_run(const struct dlfs_options *o, const struct dlfs_comm *comm)
{
    struct dlfs_run run, *r = &run;
    enum dlfs_status st = dlfs_run_init(r, o, comm, 1);
    const int root = comm->rank == 0;
    const int verbose = root && !o->quiet;
    const long steps_per_epoch = st == DLFS_OK ? (long)(r->ds.train.n / (size_t)r->global_batch) : 0;
    int epoch0 = 1;
    long sample0 = 0, last_saved = -1;
    if (st == DLFS_OK) {
        r->total_steps = steps_per_epoch * o->epochs;
        if (o->max_steps && o->max_steps < r->total_steps) r->total_steps = o->max_steps;
        if (verbose) banner_(r, steps_per_epoch);
        if (o->resume) st = dlfs_run_resume(r, &epoch0, &sample0);
        last_saved = r->step;
    }
    if (st == DLFS_OK) st = dlfs_run_check_sync(r);
    if (st != DLFS_OK) {
        dlfs_run_free(r);
        return st;
    }
    const int tty = isatty(STDOUT_FILENO);
    const double every = o->progress_s > 0 ? o->progress_s : tty ? 1.0 : 15.0;
    uint32_t *perm = dlfs_malloc(r->ds.train.n * sizeof *perm);
    double test_loss = NAN, test_acc = NAN;
    int epoch = epoch0, pos_epoch = epoch0;
    long pos_samples = sample0; /* where the data position is after the last step */
    for (; st == DLFS_OK && epoch <= o->epochs && r->step < r->total_steps; epoch++) {
        dlfs_sampler_permutation(r->seed, epoch, perm, r->ds.train.n);
        r->t_data = r->t_compute = r->t_comm = 0;
        double loss_sum = 0.0, last_print = dlfs_now();
        const double t0 = last_print;
        const long s0 = epoch == epoch0 ? sample0 / r->global_batch : 0;
        long s;
        for (s = s0; s < steps_per_epoch && r->step < r->total_steps; s++) {
            /* the next batch of this epoch, for the prefetch thread (perm changes between epochs) */
            r->next_idx = s + 1 < steps_per_epoch && r->step + 1 < r->total_steps
                              ? perm + (size_t)(s + 1) * r->global_batch : NULL;
            loss_sum += dlfs_run_step(r, &r->ds.train, perm + (size_t)s * r->global_batch);
            fault_perturb_(r);
            if (s + 1 == steps_per_epoch) { pos_epoch = epoch + 1; pos_samples = 0; }
            else { pos_epoch = epoch; pos_samples = (s + 1) * r->global_batch; }
            if (o->check_sync && r->step % o->check_sync == 0 && (st = dlfs_run_check_sync(r)) != DLFS_OK)
                break;
            if (dlfs_comm_any(comm, dlfs_signal_pending())) {
                st = interrupted_(r, pos_epoch, pos_samples, &last_saved);
                break;
            }
            if (o->checkpoint_every && r->step % o->checkpoint_every == 0 &&
                (st = save_(r, pos_epoch, pos_samples, &last_saved, NULL)) != DLFS_OK)
                break;
            /* with the loss lag (dlfs_run_step) loss_sum holds one step fewer */
            const long summed = s + 1 - s0 - r->loss_pending;
            if (verbose && summed > 0 && dlfs_now() - last_print >= every) {
                progress_(r, epoch, s + 1, s0, steps_per_epoch, loss_sum / ((double)summed * r->local_batch), t0,
                          tty);
                last_print = dlfs_now();
            }
        }
        loss_sum += dlfs_run_flush(r); /* the last step's loss, when it trails */
        if (st != DLFS_OK) break;
        const double train_time = dlfs_now() - t0;
        double sums[1] = {loss_sum};
        dlfs_comm_allreduce_f64(comm, sums, 1);
        const double samples = (double)(s - s0) * r->global_batch;
        const double train_loss = samples > 0 ? sums[0] / samples : NAN;
        if (samples > 0 && !isfinite(train_loss)) {
            st = dlfs_error_set(DLFS_ERR_NUMERIC, "training diverged: the loss became %g in epoch %d (step %ld); "
                                "lower --lr (now %g) or add --warmup", train_loss, epoch, r->step, r->lr);
            break;
        }
        dlfs_run_evaluate(r, &r->ds.test, &test_loss, &test_acc);
        const double sps = samples / train_time;
        const double tsum = r->t_compute + r->t_comm + r->t_data + 1e-30;
        if (verbose) {
            if (tty) printf("\r%100s\r", "");
            printf("epoch %3d/%d  train_loss %.4f  test_loss %.4f  test_acc %6.2f%%  %.2f s  %.0f samples/s"
                   "  [compute %.0f%% comm-wait %.0f%% data %.0f%%]\n", epoch, o->epochs, train_loss, test_loss,
                   100 * test_acc, train_time, sps, 100 * r->t_compute / tsum, 100 * r->t_comm / tsum,
                   100 * r->t_data / tsum);
            fflush(stdout);
        }
        if (r->metrics) {
            fprintf(r->metrics, "{\"epoch\": %d, \"step\": %ld, \"train_loss\": %.6f, \"test_loss\": %.6f, "
                    "\"test_acc\": %.6f, \"samples_per_s\": %.1f, \"epoch_time_s\": %.4f, \"compute_s\": %.4f, "
                    "\"comm_wait_s\": %.4f, \"data_s\": %.4f, \"lr\": %.6g, \"ranks\": %d, \"prefetched\": %ld}\n", epoch,
                    r->step, train_loss, test_loss, test_acc, sps, train_time, r->t_compute, r->t_comm, r->t_data,
                    dlfs_run_lr(r, r->step > 0 ? r->step - 1 : 0), comm->size, r->prefetch.hits);
            fflush(r->metrics);
        }
        if (o->checkpoint_every_epochs && epoch % o->checkpoint_every_epochs == 0 && last_saved != r->step)
            st = save_(r, pos_epoch, pos_samples, &last_saved, NULL);
    }
    free(perm);
    if (st == DLFS_OK) st = dlfs_run_check_sync(r);
    if (st == DLFS_OK && o->checkpoint_dir && last_saved != r->step)
        st = save_(r, pos_epoch, pos_samples, &last_saved, NULL);
    if (st == DLFS_OK) {
        if (isnan(test_acc)) dlfs_run_evaluate(r, &r->ds.test, &test_loss, &test_acc);
        char hex[65];
        dlfs_run_digest(r, hex);
        if (r->metrics) {
            fprintf(r->metrics, "{\"event\": \"final\", \"epoch\": %d, \"step\": %ld, \"test_loss\": %.6f, "
                    "\"test_acc\": %.6f, \"params_sha256\": \"%s\", \"ranks\": %d, \"model\": \"%s\", "
                    "\"comm\": \"%s\", \"backend\": \"%s\", \"precision\": \"%s\"}\n",
                    pos_epoch > o->epochs ? o->epochs : pos_epoch, r->step, test_loss, test_acc, hex, comm->size,
                    r->model.spec, dlfs_run_comm_name(r), r->be->name, dlfs_precision_name(o->precision));
            if (fflush(r->metrics) != 0)
                st = dlfs_error_set(DLFS_ERR_IO, "--metrics %s: write failed", o->metrics);
        }
        if (root) {
            printf("params_sha256 %s\n", hex);
            printf("test_acc %.2f%% after %ld steps\n", 100 * test_acc, r->step);
            fflush(stdout);
        }
    }
    dlfs_run_free(r);
    return st;
}

enum dlfs_status dlfs_eval_run(const struct dlfs_options *o, const struct dlfs_comm *comm)
{
    struct dlfs_run run, *r = &run;
    int epoch = 0;
    long samples = 0;
    enum dlfs_status st = dlfs_run_init(r, o, comm, 1);
    if (st == DLFS_OK) st = dlfs_run_resume(r, &epoch, &samples);
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
    }
    dlfs_run_free(r);
    return st;
}
