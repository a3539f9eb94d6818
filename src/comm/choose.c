/* The choice of a run's gradient transport, from the rows of DLFS_TRANSPORTS
 * (dlfs/comm.h): the first row of the asked path that applies. */
#include "dlfs/comm.h"

#define ROW_(kind, path, word, ops) {&ops, path},
static const struct {
    const struct dlfs_transport_ops *tp;
    enum dlfs_comm_path path;
} rows_[] = {DLFS_TRANSPORTS(ROW_)};
#define NROWS_ ((int)(sizeof rows_ / sizeof rows_[0]))

enum dlfs_status dlfs_transport_choose(const struct dlfs_transport_want *w, const struct dlfs_transport_ops **out)
{
    *out = NULL;
    for (int i = 0; i < NROWS_; i++) {
        if (w->comm != DLFS_COMM_PATH_AUTO && w->comm != rows_[i].path) continue;
        const int yes = rows_[i].tp->applies(w);
        if (yes < 0) return DLFS_ERR_DEVICE; /* the row's message is set */
        if (yes) {
            *out = rows_[i].tp;
            return DLFS_OK;
        }
    }
    return dlfs_error_set(DLFS_ERR_DEVICE, "--comm %s: no gradient transport of this build carries this run's "
                          "gradients (backend %s%s); use --comm auto", dlfs_comm_path_name(w->comm), w->be->name,
                          w->deterministic ? ", --deterministic" : "");
}

enum dlfs_comm_path dlfs_transport_path(const struct dlfs_transport_ops *tp)
{
    for (int i = 0; i < NROWS_; i++)
        if (rows_[i].tp == tp) return rows_[i].path;
    return DLFS_COMM_PATH_AUTO;
}
