#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# dlfs-data synth writes its file a chunk of rows at a time (bounded memory):
#  - its own peak RSS (VmHWM, DLFS_REPORT_RSS) for a 64 MiB file stays within 16 MiB of
#    that for a 1 MiB file (the file four times that bound; built in memory as before,
#    it took twice the file's size more);
#  - no temporary file is left. What the file holds (dlfs_dataset_synthetic's arrays,
#    a short last chunk): tests/data/test_dataset.c (data_dataset).
. "$(dirname "$0")/../lib.sh"
data=$2
cd "$T_TMP" || exit 1
rss() { # SIZE: synth's peak RSS in KiB
  DLFS_REPORT_RSS="$T_TMP/r$1" "$data" synth --size "$1" --seed 4 -o "s$1.h5" > "s$1.out" 2>&1 \
    || { cat "s$1.out"; t_fail "synth --size $1"; }
  cat "r$1.0"
}
small=$(rss 1) big=$(rss 64)
[ "$(stat -c %s s64.h5)" -gt $((64 << 20)) ] && t_pass "64 MiB written ($(stat -c %s s64.h5) bytes)" \
  || t_fail "s64.h5 holds $(stat -c %s s64.h5) bytes"
echo "synth peak RSS (KiB): 1 MiB file $small, 64 MiB file $big"
if ldd "$data" 2>/dev/null | grep -q libasan; then # its shadow memory and quarantine are in every RSS
  t_skip "the peak RSS bound: AddressSanitizer's shadow memory and quarantine blur it"
else
  t_within "synth 64 MiB peak RSS - 1 MiB's (KiB)" "$((big - small))" -4096 $((16 * 1024))
fi
[ ! -e s64.h5.tmp ] && t_pass "no temporary file left" || t_fail "s64.h5.tmp left behind"
t_done
