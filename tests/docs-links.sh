#!/usr/bin/env bash
# docs-links.sh — the project's Markdown files hold together:
#   - every relative link [text](path), ![alt](path) and [ref]: path in a tracked *.md
#     file points to a file or folder that exists (relative to the linking file; a
#     leading / means the repository root);
#   - every #anchor (alone, or after a path to a *.md file) names a heading of the
#     target, slugged as GitHub does: lower-case, punctuation dropped except '-' and
#     '_', each space -> '-', a repeated heading gets -1, -2, ... (an explicit
#     <a id="..."> or name="..." counts too); anchors into other files may only be
#     GitHub's line anchors (#L12, #L12-L20);
#   - README.md stays a front door: at most 250 lines.
# Links inside fenced code blocks and `code spans` are text, not links, and are skipped;
# so are absolute URLs (http:, https:, mailto:, ...).
#
#   tests/docs-links.sh [REPO_ROOT]      (default: the repository holding this script)
#
# Files: `git ls-files '*.md'` in a git checkout, else every *.md outside build*/ and .git/.
# Exit 0 when everything resolves, 1 with one line per broken link otherwise. Needs only
# bash, awk, sed and git; no build products (ctest: docs_links, label unit).
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || { echo "docs-links: cannot enter $root" >&2; exit 1; }
readme_max=250

# A UTF-8 locale, so that lower-casing and [:alnum:] treat non-ASCII letters as letters
# and drop symbols such as × or — (GitHub's slugs do the same).
for loc in C.UTF-8 C.utf8 en_US.UTF-8 en_US.utf8; do
  if locale -a 2>/dev/null | grep -qx "$loc"; then export LC_ALL=$loc; break; fi
done

files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do [ -f "$f" ] && files+=("$f"); done < <(git ls-files -z -- '*.md')
else
  while IFS= read -r -d '' f; do files+=("${f#./}"); done < <(find . -name '*.md' -not -path './build*' \
    -not -path './.git/*' -print0 | sort -z)
fi
[ ${#files[@]} -gt 0 ] || { echo "docs-links: no Markdown files under $root" >&2; exit 1; }

errors=0
err() { echo "docs-links: $*" >&2; errors=$((errors + 1)); }

# Outside fenced code: "LINE<TAB>TARGET" for each link of a file.
links_of_() {
  awk '
    /^[ \t]*(```|~~~)/ { fence = !fence; next }
    fence { next }
    {
      line = $0
      gsub(/`[^`]*`/, "", line)
      if (match(line, /^ ? ? ?\[[^]]+\]:[ \t]+[^ \t]+/)) {        # [ref]: target
        def = substr(line, RSTART, RLENGTH)
        sub(/^.*\]:[ \t]+/, "", def)
        print FNR "\t" def
        next
      }
      while (match(line, /\]\([^) \t]+/)) {                        # [text](target ...)
        print FNR "\t" substr(line, RSTART + 2, RLENGTH - 2)
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$1"
}

# Outside fenced code: the text of each heading ("#" lines), and "=ID" for HTML anchors.
headings_of_() {
  awk '
    /^[ \t]*(```|~~~)/ { fence = !fence; next }
    fence { next }
    /^#+[ \t]/ {
      h = $0
      sub(/^#+[ \t]+/, "", h); sub(/[ \t]+#+[ \t]*$/, "", h); sub(/[ \t]+$/, "", h)
      print h
    }
    {
      line = $0
      while (match(line, /<a (id|name)="[^"]+"/)) {
        a = substr(line, RSTART, RLENGTH)
        sub(/^<a (id|name)="/, "", a); sub(/"$/, "", a)
        print "=" a
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$1"
}

# GitHub's slug of a heading's text: links reduced to their text, lower case,
# everything but letters, digits, spaces, '-' and '_' dropped, spaces -> '-'.
slug_() {
  local s
  s=$(sed -E 's/!?\[([^]]*)\]\([^)]*\)/\1/g' <<<"$1")
  s=${s,,}
  s=$(sed -E 's/[^[:alnum:] _-]//g' <<<"$s")
  printf '%s\n' "${s// /-}"
}

declare -A anchors=()   # "FILE#slug" -> 1
declare -A slugged=()   # FILE -> 1 once its headings are in `anchors`
load_anchors_() {
  local f=$1 h s n
  [ -n "${slugged[$f]:-}" ] && return 0
  slugged[$f]=1
  declare -A seen=()
  while IFS= read -r h; do
    if [ "${h:0:1}" = "=" ]; then anchors["$f#${h:1}"]=1; continue; fi
    s=$(slug_ "$h")
    if [ -n "${seen[$s]:-}" ]; then
      n=${seen[$s]}
      seen[$s]=$((n + 1))
      s="$s-$n"
    else
      seen[$s]=1
    fi
    anchors["$f#$s"]=1
  done < <(headings_of_ "$f")
}

checked=0
for f in "${files[@]}"; do
  dir=$(dirname "$f")
  while IFS=$'\t' read -r ln target; do
    case $target in
      [a-zA-Z]*:*) case ${target%%:*} in *[!a-zA-Z0-9+.-]*) ;; *) continue ;; esac ;;  # a URL scheme
    esac
    checked=$((checked + 1))
    path=${target%%#*}
    anchor=
    [ "$path" != "$target" ] && anchor=${target#*#}
    if [ -z "$path" ]; then
      dest=$f
    elif [ "${path:0:1}" = / ]; then
      dest=${path#/}
    else
      dest=$dir/$path
    fi
    # normalise a/./b and a/x/../b so that anchors of one file share one key
    dest=$(realpath -m --relative-to=. -- "$dest")
    if [ ! -e "$dest" ]; then
      err "$f:$ln: '$target': $dest does not exist"
      continue
    fi
    [ -n "$anchor" ] || continue
    if [[ $dest == *.md ]] && [ -f "$dest" ]; then
      load_anchors_ "$dest"
      [ -n "${anchors["$dest#$anchor"]:-}" ] || err "$f:$ln: '$target': no heading with the anchor #$anchor in $dest"
    elif ! [[ $anchor =~ ^L[0-9]+(-L[0-9]+)?$ ]]; then
      err "$f:$ln: '$target': #$anchor in $dest, which is not a Markdown file (only #L<line> anchors there)"
    fi
  done < <(links_of_ "$f")
done

if [ -f README.md ]; then
  lines=$(wc -l <README.md)
  [ "$lines" -le "$readme_max" ] || err "README.md: $lines lines; the front door keeps to $readme_max (move details into the docs it links)"
fi

if [ "$errors" -gt 0 ]; then
  echo "docs-links: $errors problem(s) in ${#files[@]} Markdown files ($checked relative links)" >&2
  exit 1
fi
echo "docs-links: ${#files[@]} Markdown files, $checked relative links, all resolve; README.md ${lines:-?} lines"
