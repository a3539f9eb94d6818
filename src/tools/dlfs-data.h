/* dlfs-data's subcommands kept in files of their own. */
#ifndef DLFS_TOOLS_DLFS_DATA_H
#define DLFS_TOOLS_DLFS_DATA_H

/* dlfs-data synth [options] -o OUT.h5 (argv[0] is "synth"); the exit status. */
int dlfs_data_synth(int argc, char **argv);
/* dlfs-data ckpt-merge SHARDED -o FILE (argv[0] is "ckpt-merge"); the exit status. */
int dlfs_data_ckpt_merge(int argc, char **argv);

#endif
