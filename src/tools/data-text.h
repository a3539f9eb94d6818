/* dlfs-data's token-file commands (data-text.c): `text` and `info` of a token file. */
#ifndef DLFS_TOOLS_DATA_TEXT_H
#define DLFS_TOOLS_DATA_TEXT_H

extern const char data_text_usage[], data_text_help[];
/* dlfs-data text ARGS (argv[0] = "text"): exit status 0, 1 or 2. */
int data_text_main(int argc, char **argv);
/* The summary of token file `path` on stdout. */
int data_text_info(const char *path);
/* s for a terminal (a malloc'd copy): control bytes, bytes
 * that are no valid UTF-8 and the backslash as \xNN / \\. */
char *data_printable(const char *s);

#endif
