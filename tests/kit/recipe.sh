#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Run by tests/kit/kit.sh in a mount namespace of its own (unshare -m): the device
# recipe of launch/README.md, its command exactly as written there, on a copy of the tree
# as a device call gets it (what git does not ignore, no .git) plus .gpu-kit/ (the slim
# archive and commit.txt, as launch/gpu/prepare makes them), with this machine's copies
# of what the kit holds hidden and, to keep the build CPU-only here, the CUDA toolkit
# too. Without a GPU the command is a dry run: GPU rows skipped, the CPU parts run.
# Arguments: SOURCE_DIR ARCHIVE HIDE_FILES_FILE WORK_DIR.
. "$(dirname "$0")/../lib.sh"
src=$1 arc=$2 hide_files=$3 work=$4
mkdir -p "$work/tree/.gpu-kit" "$work/out"
: >"$work/empty"
# the command, as the README has it
cmd=$(awk '/^<!-- device-command -->$/ { m = 1; next } m && /^```sh$/ { f = 1; next } f && /^```$/ { exit } f' \
      "$src/launch/README.md")
[ -n "$cmd" ] || { t_fail "no device command in launch/README.md"; t_done; }
[ ${#cmd} -le 2000 ] && t_pass "the device command: ${#cmd} characters (<= 2000)" || t_fail "the device command has ${#cmd} characters"
# the tree a device call copies, and the carried .gpu-kit
(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t "$work/tree") \
  || { t_fail "copying the tree"; t_done; }
cp "$arc" "$work/tree/.gpu-kit/"
git -C "$src" log -1 --format='%h %cs %s' >"$work/tree/.gpu-kit/commit.txt"
want_commit=$(git -C "$src" rev-parse --short HEAD)
mount --make-rprivate / || { t_fail "mount --make-rprivate /"; t_done; }
bad=0
while read -r f; do [ -L "$f" ] || mount --bind "$work/empty" "$f" || bad=$((bad + 1)); done <"$hide_files"
for d in /usr/local/cuda /usr/local/cuda-*; do
  [ -d "$d" ] && ! [ -L "$d" ] && { mount -t tmpfs -o size=1m none "$d" || bad=$((bad + 1)); }
done
nv=$(command -v nvcc || true)   # a wrapper elsewhere on PATH: an empty, non-executable file
[ -n "$nv" ] && { mount --bind "$work/empty" "$nv" || bad=$((bad + 1)); }
nvcc --version >/dev/null 2>&1 && bad=$((bad + 1))
[ $bad -eq 0 ] && t_pass "the system's copies hidden, and the CUDA toolkit" || t_fail "$bad mounts failed (or nvcc still found)"
export PATH=${PATH//\/usr\/local\/cuda\/bin:/}
t0=$(date +%s) rc=0
(cd "$work/tree" && OUT=$work/out TMPDIR=$work timeout 590 bash -c "$cmd") >"$work/cmd.log" 2>&1 || rc=$?
s=$(( $(date +%s) - t0 ))
md=$work/out/gpu-check.md
[ $rc -eq 0 ] && t_pass "the device command: exit 0 in $s s" || { tail -n 40 "$work/cmd.log"; t_fail "the device command: exit $rc after $s s"; }
n=$(find "$work/out" -type f | wc -l) big=$(find "$work/out" -type f -size +16M | wc -l)
[ "$n" -le 8 ] && [ "$big" -eq 0 ] && t_pass "\$OUT: $n files ($(cd "$work/out" && echo *)), none over 16 MiB" \
  || t_fail "\$OUT: $n files, $big over 16 MiB"
for f in gpu-check.md env.txt logs.tar.gz stdout.txt; do [ -s "$work/out/$f" ] || t_fail "\$OUT lacks $f"; done
grep -q "the kit .* is used" "$work/out/stdout.txt" && t_pass "the image lacks packages: the kit is used" \
  || t_fail "the kit was not used (stdout.txt: $(head -n 3 "$work/out/stdout.txt"))"
grep -q "^commit $want_commit .*(from .gpu-kit/commit.txt)" "$md" && t_pass "the table names the commit from .gpu-kit/commit.txt" \
  || t_fail "the table's commit line: $(grep -m1 '^commit' "$md")"
grep -q "dry-run" "$md" && t_pass "no GPU: a dry run" || t_fail "not a dry run"
grep -q "^| hung NCCL set-up.*| skipped" "$md" && t_pass "a GPU row reports skipped" || t_fail "no skipped GPU row"
grep -q "^| configure + build: .*| pass" "$md" && t_pass "built with the kit" || t_fail "no passing build row"
nrows=$(grep -cE '^\| .* \| (pass|info)' "$md")
[ "$nrows" -ge 5 ] && t_pass "$nrows CPU rows ran (pass or info)" || t_fail "only $nrows rows ran"
nf=$(grep -c '^| .* | FAIL' "$md")
[ "$nf" -eq 0 ] && t_pass "no row failed" || { grep '^| .* | FAIL' "$md"; t_fail "$nf rows failed"; }
grep -q '^gpus: ' "$work/out/env.txt" && grep -q '^nvcc: ' "$work/out/env.txt" && t_pass "env.txt: $(grep '^os: ' "$work/out/env.txt")" \
  || t_fail "env.txt incomplete"
grep "^| " "$md"   # the table, for the log
t_done
