# shellcheck shell=bash
# shellcheck disable=SC2015,SC2034 # `test && echo || echo`: echo never fails; STEP_S is for the caller
# Sourced by launch/gpu-check.sh: its helpers (time budget, table rows, logged steps,
# the log tarball, reading metrics, the unigram entropy of a text's validation split,
# PyTorch's lines). They use the check's T0, DEADLINE, RESERVE, MD, LOGS, WORK, OUT, the
# counters and the arrays DL, PT.
say() { printf '[%3ds] %s\n' $((SECONDS - T0)) "$*"; }
left() { echo $((T0 + DEADLINE - RESERVE - SECONDS)); }
# budget NEED MAX: seconds for a step, min(MAX, what is left); fails when less than NEED is left
budget() { local l; l=$(left); [ "$l" -ge "$1" ] || return 1; [ "$l" -lt "$2" ] && echo "$l" || echo "$2"; }
# row CHECK STATUS DLFS PYTORCH TARGET SECONDS: one table row, written at once
row() {
  local st=$2
  case $st in
  pass* | met* | missed*) N_PASS=$((N_PASS + 1)) ;;
  FAIL*) N_FAIL=$((N_FAIL + 1)); FAILED+=("$1: $st") ;;
  skipped*) N_SKIP=$((N_SKIP + 1)); SKIPPED+=("$1: $st") ;;
  *) N_INFO=$((N_INFO + 1)) ;;
  esac
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$st" "${3:-—}" "${4:-—}" "${5:-—}" "${6:-—}" >>"$MD"
  say "$1: $st${3:+ — $3}"
}
# no_time CHECK NEED: the row of a step the deadline left no room for
no_time() { row "$1" "skipped: no time (needs ≥ ${2:-?} s, $(left) s left of --deadline $DEADLINE)"; }
# tail_of NAME: the end of a failing step's log, on stdout
tail_of() { echo "----- tail of $1.log -----"; tail -n "${2:-25}" "$LOGS/$1.log" 2>/dev/null; echo "-----"; }
# run NAME SECONDS CMD...: log to $LOGS/NAME.log; STEP_S = seconds taken; the status
run() {
  local name=$1 t=$2 s=$SECONDS rc=0; shift 2
  echo "+ $*" >"$LOGS/$name.log"
  timeout -k 10 "$t" "$@" >>"$LOGS/$name.log" 2>&1 || rc=$?
  STEP_S=$((SECONDS - s))
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "gpu-check: timed out after $t s" >>"$LOGS/$name.log"
  return $rc
}
# why RC SECONDS MAX: the reason of a failed step, in words
why() { if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then
          if [ "$2" -lt "$3" ]; then echo "cut by the deadline after $2 s"; else echo "timed out after $2 s"; fi
        else echo "exit $1"; fi; }
# pack: every log into $OUT/logs.tar.gz (refreshed after each phase); big logs cut to their end
pack() {
  local tmp=$OUT/.logs.tar.gz.tmp
  tar -czf "$tmp" -C "$WORK" logs 2>/dev/null
  if [ "$(stat -c %s "$tmp" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
    local f; while IFS= read -r -d '' f; do tail -c 1048576 "$f" >"$f.cut" && mv "$f.cut" "$f"; done \
      < <(find "$LOGS" -type f -size +1M -print0)
    tar -czf "$tmp" -C "$WORK" logs 2>/dev/null
  fi
  mv -f "$tmp" "$OUT/logs.tar.gz"
}
# metrics: KEY of the last EVENT object of a --metrics file (numbers and strings)
mval() { sed -n "s/.*\"event\": \"$2\".*\"$3\": \"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p" "$1" 2>/dev/null | tail -n 1; }
# mean epoch time without the first epoch (warm-up), in seconds
epoch_s() { awk -F'"epoch_time_s": ' 'NF > 1 { split($2, a, ","); n++; if (n > 1) { s += a[1]; k++ } else f = a[1] }
  END { if (k) printf "%.3f", s / k; else if (n) printf "%.3f", f }' "$1" 2>/dev/null; }
within() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { if (a == "" || b == "") exit 1; x = (a - b) * 100; exit !(x <= d && x >= -d) }'; }
atleast() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b) }'; }
atmost() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 <= b) }'; }
pct() { awk -v a="$1" 'BEGIN { if (a == "") print "?"; else printf "%.2f %%", 100 * a }'; }
# gc_unigram_nats P FILE...: the byte unigram entropy (nats) of dlfs-data text's validation split
# (of each file the last ceil(len x P / 100) bytes), from the files themselves
gc_unigram_nats() {
  local p=$1 f n; shift
  for f in "$@"; do n=$(wc -c <"$f"); tail -c $(((n * p + 99) / 100)) "$f"; done | od -An -v -tu1 |
    tr -s ' ' '\n' | awk 'NF { c[$1]++; n++ } END { if (!n) exit 1; for (k in c) h -= c[k] / n * log(c[k] / n); printf "%.4f", h }'
}
# gc_torch_lines LOG: PT[MODEL-BATCH-PRECISION] = the median ms of torch_ref.py's lines in LOG
gc_torch_lines() {
  local _t model batch prec _mode ms
  while read -r _t model batch prec _mode ms; do PT[$model-$batch-$prec]=$ms
  done < <(grep -E '^torch [a-z0-9-]+ [0-9]+ (fp32|bf16) eager [0-9.]+$' "$LOGS/$1.log" 2>/dev/null)
}
# gc_vs_torch LABEL KEY MODEL BATCH PREC UNITS_PER_STEP UNIT: one info row, dlfs against PyTorch
gc_vs_torch() {
  local d=${DL[$2]:-} p=${PT[$3-$4-$5]:-} ratio rate
  ratio=$(awk -v a="$d" -v b="$p" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "dlfs / PyTorch: %.2fx", a / b; else print "" }')
  rate=$(awk -v a="$d" -v n="$6" 'BEGIN { if (a + 0 > 0) { r = n * 1000 / a; printf (r >= 100 ? ", %.0f" : ", %.3g"), r } }')
  row "$1" info "${d:-?} ms${rate:+$rate $7/s}" "${p:-n/a}${p:+ ms}" "$ratio" "${STEP_S_M:-}"
}
