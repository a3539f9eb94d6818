#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The mutation kit cannot rot silently (ctest mutants_apply, label unit; a few seconds):
# every patch of tests/mutants/ is named NN-mechanism.patch (NN: two or three digits), says what bug it plants and
# which tests kill it, still applies to the tree (git apply --check in a scratch copy of the
# tracked files: the working tree is never touched), and its "Tests:" regex names at least
# one test of this build. launch/mutants runs the kit itself.
# usage: check.sh SOURCE_DIR BUILD_DIR
. "$(dirname "$0")/../lib.sh"
root=$1 build=$2
command -v git >/dev/null || { echo "skipped: no git to apply the patches with"; exit 77; }
# the tracked files (or, outside a git checkout, the source folders) into the scratch copy
copy=$T_TMP/tree
mkdir -p "$copy"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do
    [ -f "$root/$f" ] && (cd "$root" && cp --parents "$f" "$copy/")   # (not those deleted in the working tree)
  done < <(git -C "$root" ls-files -z)
else
  cp -r "$root/src" "$root/include" "$copy/"
fi
# the names of this build's tests (read from the CTestTestfiles: running ctest here would
# overwrite the log of the ctest that runs this test)
find "$build" -name CTestTestfile.cmake -exec sed -n 's/^add_test(\[=\[\([^]]*\)\]=\].*/\1/p' {} + > "$T_TMP/tests"
[ -s "$T_TMP/tests" ] || t_fail "no tests found under $build"
n=0
for p in "$root"/tests/mutants/*.patch; do
  [ -e "$p" ] || continue
  n=$((n + 1))
  name=$(basename "$p")
  [[ $name =~ ^[0-9]{2,3}-[a-z0-9-]+\.patch$ ]] || t_fail "$name: not named NN-mechanism.patch"
  head=$(sed '/^diff --git /,$d' "$p")
  grep -q '^Mutant: ' <<<"$head" && grep -q '^Killed by: ' <<<"$head" \
    || t_fail "$name: the header lacks the 'Mutant:' (the bug) or 'Killed by:' (the tests) line"
  regex=$(sed -n 's/^Tests: *//p' <<<"$head" | head -n 1)
  if ! out=$(GIT_CEILING_DIRECTORIES=$T_TMP git -C "$copy" apply --check "$p" 2>&1); then
    t_fail "$name no longer applies: $out"
    continue
  fi
  if [ -n "$regex" ]; then
    found=$(grep -cE -- "$regex" "$T_TMP/tests" || [ $? = 1 ])
    [ "${found:-0}" -gt 0 ] && t_pass "$name applies; Tests: $regex ($found tests)" \
      || t_fail "$name: Tests: '$regex' matches no test of this build"
  else
    t_pass "$name applies; Tests: (every test)"
  fi
done
[ $n -ge 15 ] && t_pass "$n mutants in the kit" || t_fail "only $n mutants in the kit (at least 15)"
t_done
