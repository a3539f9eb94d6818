#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# --version (cmake/DlfsVersion.cmake, src/core/version.c), against git itself (a few seconds):
#  - the commit logic in scratch projects that include cmake/DlfsVersion.cmake, each checked
#    against `git rev-parse`: a clean checkout gives HEAD's hash; an untracked file changes
#    nothing; an edited tracked file adds "+changes"; a new commit is picked up by the next
#    build (no configure by hand); a `git archive` tarball gives the archived commit
#    (cmake/commit.txt, export-subst); a plain copy without git says "unknown";
#  - the built programs: the first line is "PROGRAM VERSION" with project()'s version read
#    from CMakeLists.txt; the commit is this checkout's HEAD (when it is one); the backends
#    start with cpu and name cuda exactly when the program links the CUDA runtime (readelf);
#    under mpirun -np 2 one rank prints.
# usage: version.sh TRAIN DATA FMNIST SOURCE_DIR
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 src=$4
ver=$(sed -n 's/^project(dlfs VERSION \([0-9][0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$ver" ] || { t_fail "no project(dlfs VERSION ...) in $src/CMakeLists.txt"; t_done; }

# --- the commit logic, in scratch projects --------------------------------------------------
# commit_of DIR: configure DIR (a project including DlfsVersion) into DIR/b, print DLFS_COMMIT
commit_of() {
  cmake -S "$1" -B "$1/b" > "$1/cfg.out" 2>&1 || { cat "$1/cfg.out" >&2; echo "(configure failed)"; return; }
  cat "$1/b/commit.txt"
}
if command -v git >/dev/null; then
  s=$T_TMP/proj
  mkdir -p "$s/cmake"
  cp "$src/cmake/DlfsVersion.cmake" "$src/cmake/commit.txt" "$s/cmake/"
  cp "$src/.gitattributes" "$s/"
  cat > "$s/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(dlfs VERSION 9.8.7 LANGUAGES NONE)
list(APPEND CMAKE_MODULE_PATH ${CMAKE_CURRENT_SOURCE_DIR}/cmake)
include(DlfsVersion)
file(WRITE ${CMAKE_BINARY_DIR}/commit.txt "${DLFS_COMMIT}")
CM
  echo one > "$s/tracked.txt"
  printf 'b/\n' > "$s/.gitignore"
  g() { git -C "$s" -c user.name=t -c user.email=t@t -c commit.gpgsign=false "$@"; }
  g init -q && g add -A && g commit -qm one
  head=$(g rev-parse --short=12 HEAD)
  got=$(commit_of "$s")
  [ "$got" = "$head" ] && t_pass "clean checkout: $got (git rev-parse)" || t_fail "clean checkout: '$got', want '$head'"
  echo x > "$s/untracked.txt"
  got=$(commit_of "$s")
  [ "$got" = "$head" ] && t_pass "an untracked file: still $got" || t_fail "an untracked file: '$got', want '$head'"
  echo two >> "$s/tracked.txt"
  got=$(commit_of "$s")
  [ "$got" = "$head+changes" ] && t_pass "an edited tracked file: $got" || t_fail "edited: '$got', want '$head+changes'"
  g commit -qam two
  head2=$(g rev-parse --short=12 HEAD)
  cmake --build "$s/b" > "$s/build.out" 2>&1
  got=$(cat "$s/b/commit.txt")
  [ "$got" = "$head2" ] && [ "$head2" != "$head" ] && t_pass "a new commit, then a build: $got" \
    || { cat "$s/build.out"; t_fail "after a commit and a build: '$got', want '$head2'"; }
  mkdir "$T_TMP/tarball" && g archive HEAD | tar -x -C "$T_TMP/tarball"
  got=$(commit_of "$T_TMP/tarball")
  [ "$got" = "$head2" ] && t_pass "git archive tarball: $got (cmake/commit.txt)" || t_fail "tarball: '$got', want '$head2'"
  mkdir "$T_TMP/copy" && cp -r "$s/cmake" "$s/CMakeLists.txt" "$T_TMP/copy/"
  got=$(commit_of "$T_TMP/copy")
  [ "$got" = unknown ] && t_pass "a copy without git: unknown" || t_fail "a copy without git: '$got', want 'unknown'"
else
  t_skip "no git: the commit logic is not checked"
fi

# --- the built programs ---------------------------------------------------------------------
want_commit=unknown
if command -v git >/dev/null && [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" -ef "$src" ]; then
  want_commit=$(git -C "$src" rev-parse --short=12 HEAD)
elif grep -qE '^[0-9a-f]{40}$' "$src/cmake/commit.txt"; then
  want_commit=$(cut -c1-12 "$src/cmake/commit.txt")
fi
cuda=no
readelf -d "$train" | grep -q 'NEEDED.*libcudart' && cuda=yes
for prog in "$train" "$data"; do
  name=$(basename "$prog")
  out=$("$prog" --version) || { t_fail "$name --version: exit status $?"; continue; }
  [ "$(sed -n 1p <<<"$out")" = "$name $ver" ] && t_pass "$name --version: '$name $ver'" \
    || t_fail "$name --version's first line: '$(sed -n 1p <<<"$out")', want '$name $ver'"
  c=$(sed -n 's/^commit: //p' <<<"$out")
  [ "${c%+changes}" = "$want_commit" ] && t_pass "$name: commit $c" || t_fail "$name: commit '$c', want ${want_commit}[+changes]"
  b=$(sed -n 's/^backends: //p' <<<"$out")
  has=no
  [[ $b == *cuda* ]] && has=yes
  [[ $b == cpu* ]] && [ $has = $cuda ] && t_pass "$name: backends '$b' (links the CUDA runtime: $cuda)" \
    || t_fail "$name: backends '$b', but links the CUDA runtime: $cuda"
done
n=$(mpirun -np 2 "$train" --version 2>&1 | grep -c "^dlfs-train $ver$")
[ "$n" = 1 ] && t_pass "mpirun -np 2 dlfs-train --version: one rank prints" || t_fail "mpirun -np 2: $n version lines, want 1"
t_done
