/* The optimizers' descriptors, one per row of DLFS_OPTIMIZERS (dlfs/optim.h), each
 * defined in its own file (sgd.c, adam.c); optimizer.c makes the table of them. */
#ifndef DLFS_OPTIM_IMPL_H
#define DLFS_OPTIM_IMPL_H

#include "dlfs/optim.h"

#define OPTIM_DECL_(e, name, desc) extern const struct dlfs_optim_desc desc;
DLFS_OPTIMIZERS(OPTIM_DECL_)
#undef OPTIM_DECL_

#endif
