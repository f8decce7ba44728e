#!/usr/bin/env bash
# scripts/check_format.sh: clang-format 14 (Debian's clang-format-14, which scripts/bootstrap.sh
# installs) over the files listed in scripts/format_checked.txt, with the repository's
# .clang-format (Google style, 100 columns). ctest runs it as `format.check` (label `format`).
#
#   scripts/check_format.sh              check every listed file; exit 1 if one is not formatted
#                                        (its diff is printed)
#   scripts/check_format.sh --fix PATH.. format these files in place and add them to the list
#
# The list grows as files are formatted: see the rule at the top of scripts/format_checked.txt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
list="$root/scripts/format_checked.txt"
cf=$(command -v clang-format-14 || true)
[ -n "$cf" ] || { echo "check_format: clang-format-14 not found (scripts/bootstrap.sh installs it)" >&2; exit 2; }

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0
fi

if [ "${1:-}" = "--fix" ]; then
  shift
  [ $# -gt 0 ] || { echo "check_format: --fix needs the files to format" >&2; exit 2; }
  for f in "$@"; do
    rel=$(realpath --relative-to="$root" "$f")
    [ -f "$root/$rel" ] || { echo "check_format: no file $rel" >&2; exit 2; }
    "$cf" -i --style=file "$root/$rel"
    grep -qxF "$rel" "$list" || echo "$rel" >> "$list"
    echo "check_format: formatted $rel"
  done
  { grep '^#' "$list"; grep -v '^#' "$list" | sed '/^$/d' | sort -u; } > "$list.tmp"
  mv "$list.tmp" "$list"
  exit 0
fi

cd "$root"
bad=0 n=0
while IFS= read -r f; do
  case "$f" in ''|'#'*) continue ;; esac
  n=$((n + 1))
  if [ ! -f "$f" ]; then
    echo "check_format: $f is listed in scripts/format_checked.txt but does not exist"
    bad=1; continue
  fi
  if ! out=$("$cf" --style=file "$f" | diff -u "$f" -); then
    echo "check_format: $f is not formatted (fix: scripts/check_format.sh --fix $f):"
    echo "$out" | head -n 40
    bad=1
  fi
done < "$list"
[ $n -gt 0 ] || { echo "check_format: scripts/format_checked.txt lists no file" >&2; exit 2; }
if [ $bad -ne 0 ]; then exit 1; fi
echo "check_format: $n files formatted ($("$cf" --version | head -n 1))"
