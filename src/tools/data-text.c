/* dlfs-data text / info of a token file (the thin part; the work is in
 * src/data/tokens*.c). Part of the dlfs-data program (dlfs-data.c dispatches). */
#define _POSIX_C_SOURCE 200809L
#include "tools/data-text.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dlfs/tokens.h"
#include "dlfs/util.h"

#define PYDOCS_DIR "/usr/share/doc/python3.11/html/_sources"
#define PYDOCS_SOURCE "Python 3.11 documentation, reStructuredText sources (Debian package python3.11-doc)"
#define PYDOCS_LICENSE "PSF License Version 2 (Python Software Foundation), see /usr/share/doc/python3.11/copyright"

const char data_text_usage[] =
    "       dlfs-data text FILE|DIR ... [--ext .txt] [--val-percent P] [--source TEXT] [--license TEXT]\n"
    "                      [--chunk N] [--force] -o OUT.h5\n"
    "       dlfs-data text --python-docs [DIR] [--val-percent P] [--force] -o OUT.h5\n";
const char data_text_help[] =
    "text     reads text files (a DIR: every file below it whose name ends in --ext,\n"
    "         default .txt) and writes a dlfs token file: byte-level tokens (vocabulary\n"
    "         256) in /train/tokens and /val/tokens (uint16). Validation split: of each\n"
    "         file, in sorted path order, the last ceil(len*P/100) bytes (P = --val-percent,\n"
    "         1..50, default 5). --python-docs takes the reST sources of the Python docs\n"
    "         (DIR, default " PYDOCS_DIR ",\n"
    "         Debian package python3.11-doc) with their source and license. An existing\n"
    "         OUT.h5 is refused unless --force. --chunk N: ids per HDF5 chunk (1024 to\n"
    "         1048576, default 1048576), the unit a streamed run (--data-cache) reads.\n";

static int fail_(int rc, const char *msg)
{
    fprintf(stderr, "dlfs-data: %s%s\n", msg, rc == 2 ? " (see 'dlfs-data --help')" : "");
    return rc;
}

struct text_opts_ { const char *ext, *source, *license, *out; int val, force, pydocs; long chunk; };

static int parse_(int argc, char **argv, struct text_opts_ *o)
{
    static const struct option longopts[] = {
        {"ext", required_argument, NULL, 'e'},          {"val-percent", required_argument, NULL, 'v'},
        {"source", required_argument, NULL, 's'},       {"license", required_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'},       {"force", no_argument, NULL, 'f'},
        {"python-docs", no_argument, NULL, 'P'},        {"help", no_argument, NULL, 'h'},
        {"chunk", required_argument, NULL, 'c'},        {NULL, 0, NULL, 0}};
    char msg[256], *end;
    opterr = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1;) {
        switch (c) {
        case 'e': o->ext = optarg; break;
        case 's': o->source = optarg; break;
        case 'l': o->license = optarg; break;
        case 'o': o->out = optarg; break;
        case 'f': o->force = 1; break;
        case 'P': o->pydocs = 1; break;
        case 'v':
            errno = 0;
            o->val = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->val < 1 || o->val > 50) {
                snprintf(msg, sizeof msg, "--val-percent '%.64s': give a whole number from 1 to 50", optarg);
                return fail_(2, msg);
            }
            break;
        case 'c':
            errno = 0;
            o->chunk = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->chunk < 1024 || o->chunk > (1L << 20)) {
                snprintf(msg, sizeof msg, "--chunk '%.64s': give a whole number of ids from 1024 to 1048576", optarg);
                return fail_(2, msg);
            }
            break;
        case 'h': return -1;
        case ':': snprintf(msg, sizeof msg, "option '%.64s' needs a value", argv[optind - 1]); return fail_(2, msg);
        default: snprintf(msg, sizeof msg, "unknown option '%.64s' for 'text'", argv[optind - 1]); return fail_(2, msg);
        }
    }
    if (!o->out) return fail_(2, "text needs -o OUT.h5");
    if (optind == argc && !o->pydocs) return fail_(2, "text needs FILE or DIR inputs (or --python-docs)");
    if (o->pydocs && optind < argc - 1) return fail_(2, "--python-docs takes at most one DIR");
    return 0;
}

int data_text_main(int argc, char **argv)
{
    struct text_opts_ o = {".txt", NULL, NULL, NULL, 5, 0, 0, 0};
    const int prc = parse_(argc, argv, &o);
    if (prc == -1) return fputs(data_text_usage, stdout), fputs(data_text_help, stdout), 0;
    if (prc) return prc;
    const char *pyd[1] = {optind < argc ? argv[optind] : PYDOCS_DIR};
    const char *const *in = o.pydocs ? pyd : (const char *const *)argv + optind;
    const int n = o.pydocs ? 1 : argc - optind;
    if (o.pydocs) {
        o.source = o.source ? o.source : PYDOCS_SOURCE;
        o.license = o.license ? o.license : PYDOCS_LICENSE;
    }
    for (int i = 0; i < n; i++)
        if (dlfs_path_same(in[i], o.out)) return fail_(2, "-o is one of the inputs: write the token file elsewhere");
    struct dlfs_tokens t;
    if (dlfs_tokens_from_text(in, n, o.ext, o.val, &t) != DLFS_OK)
        return fail_(1, dlfs_error_msg());
    t.source = (char *)(o.source ? o.source : "");
    t.license = (char *)(o.license ? o.license : "");
    t.train.chunk = t.val.chunk = (size_t)o.chunk;
    const enum dlfs_status st = dlfs_tokens_save(o.out, &t, o.force);
    if (st == DLFS_OK)
        printf("wrote %s: %zu train + %zu val byte tokens\n", o.out, t.train.n, t.val.n);
    t.source = t.license = NULL;
    dlfs_tokens_free(&t);
    return st == DLFS_OK ? 0 : fail_(st == DLFS_ERR_USAGE ? 2 : 1, dlfs_error_msg());
}

/* s for a terminal (a malloc'd copy): control bytes (C0, DEL, the C1 range as UTF-8),
 * bytes that are no valid UTF-8 and the backslash as \xNN / \\, so that a name
 * stored in a dataset cannot move the cursor, recolour or retitle the terminal. */
char *data_printable(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    const size_t n = strlen(s);
    char *out = dlfs_malloc(4 * n + 1), *o = out;
    for (size_t i = 0; i < n;) {
        int len = u[i] < 0x80 ? 1 : u[i] >= 0xc2 && u[i] < 0xe0 ? 2 : u[i] >= 0xe0 && u[i] < 0xf0 ? 3
                                  : u[i] >= 0xf0 && u[i] < 0xf5 ? 4 : 0;
        for (int k = 1; k < len; k++)
            if (i + (size_t)k >= n || (u[i + k] & 0xc0) != 0x80) len = 0;
        if (len == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0) len = 0; /* U+0080..U+009F: C1 controls */
        if (len == 1 && (u[i] < 0x20 || u[i] == 0x7f || u[i] == '\\')) len = 0;
        if (len == 0) {
            if (u[i] == '\\') *o++ = '\\', *o++ = '\\';
            else o += sprintf(o, "\\x%02x", u[i]);
            i++;
            continue;
        }
        memcpy(o, u + i, (size_t)len);
        o += len, i += (size_t)len;
    }
    *o = '\0';
    return out;
}

int data_text_info(const char *path)
{
    struct dlfs_tokens t;
    if (dlfs_tokens_load(path, &t) != DLFS_OK) return fail_(1, dlfs_error_msg());
    size_t count[2][256] = {{0}};
    const struct dlfs_token_split *sp[2] = {&t.train, &t.val};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sp[k]->n; i++) count[k][sp[k]->ids[i] & 255] += sp[k]->ids[i] < 256;
    int distinct = 0;
    for (int i = 0; i < 256; i++) distinct += count[0][i] + count[1][i] > 0;
    const char *label[6] = {"file:     ", "tokenizer:", "split:    ", "source:   ", "license:  ", NULL};
    const char *text[5] = {t.path, t.tokenizer, t.split, t.source, t.license};
    printf("format:    %s, version %d\n", DLFS_TOKENS_FORMAT, DLFS_TOKENS_VERSION);
    printf("vocab:     %d\n", t.vocab);
    printf("train:     %zu tokens\n", t.train.n);
    printf("val:       %zu tokens\n", t.val.n);
    if (t.vocab <= 256) printf("distinct:  %d ids used\n", distinct);
    for (int i = 0; label[i]; i++) {
        char *esc = data_printable(text[i]);
        printf("%s %s\n", label[i], esc[0] ? esc : "(not given)");
        free(esc);
    }
    dlfs_tokens_free(&t);
    return 0;
}
