#!/usr/bin/env bash
# The layering rule: core -> nn -> io -> (train, parallel, transfer) -> stages -> cli. A file under
# include/mimic/<area>/ or src/<area>/ may include mimic headers of its own level or below, never above.
# MPI lives in core, parallel and io: anywhere else, a raw MPI identifier in code (a call MPI_Xxx(...), a
# constant MPI_XXX, a type MPI_Comm) or #include <mpi.h> breaks the rule; prose in comments and strings
# does not count. The other layers use the typed collectives of par::Comm and parallel/.
# Usage: tests/layering.sh [repository root]; prints every upward include and every raw MPI use outside
# core, parallel and io, and exits 1 if there is one.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
level() {
  case $1 in
    core) echo 0 ;;
    nn) echo 1 ;;
    io) echo 2 ;;
    train | parallel | transfer) echo 3 ;;
    stages) echo 4 ;;
    cli) echo 5 ;;
    *) echo "" ;;
  esac
}
# The lines of a file with a raw MPI identifier or <mpi.h>, as "line:text", read with string literals and
# // comments blanked out.
raw_mpi() {
  sed -E 's/"([^"\\]|\\.)*"/""/g; s:(^|[^:])//.*$:\1:; s:^[[:space:]]*/?\*.*$::' "$1" |
    grep -n -E '(^|[^A-Za-z0-9_])MPI_[A-Za-z0-9_]+|#include[[:space:]]*<mpi\.h>' || true
}
bad=0 checked=0 mpi_owned=0 mpi_stray=0
cd "$root"
while IFS= read -r file; do
  area=${file#include/mimic/}
  area=${area#src/}
  area=${area%%/*}
  from=$(level "$area")
  if [ -z "$from" ]; then
    echo "layering: $file: folder '$area' has no level; add it to tests/layering.sh" >&2
    bad=1
    continue
  fi
  checked=$((checked + 1))
  uses=$(raw_mpi "$file")
  if [ -n "$uses" ]; then
    n=$(printf '%s\n' "$uses" | wc -l)
    case $area in
      core | parallel | io) mpi_owned=$((mpi_owned + n)) ;;
      *)
        mpi_stray=$((mpi_stray + n))
        while IFS= read -r use; do
          echo "layering: $file:${use%%:*}: raw MPI in $area (only core, parallel and io call MPI): ${use#*:}" >&2
        done <<<"$uses"
        bad=1
        ;;
    esac
  fi
  while IFS=: read -r line inc; do
    to_area=${inc#*mimic/}
    to_area=${to_area%%/*}
    to=$(level "$to_area")
    if [ -z "$to" ]; then
      echo "layering: $file:$line includes mimic/$to_area/..., a folder with no level" >&2
      bad=1
    elif [ "$to" -gt "$from" ]; then
      echo "layering: $file:$line: $area (level $from) includes ${inc} (level $to, above it)" >&2
      bad=1
    fi
  done < <(grep -n -o '#include "mimic/[^"]*"' "$file" | sed 's/#include "\(.*\)"/\1/' || true)
done < <(find include/mimic src -name '*.hpp' -o -name '*.cpp' | sort)
echo "layering: $mpi_owned lines with raw MPI in core, parallel and io; $mpi_stray elsewhere"
if [ $bad -ne 0 ]; then
  echo "layering: upward includes or raw MPI outside core, parallel and io found (rule: core -> nn -> io ->" \
    "train/parallel/transfer -> stages -> cli; MPI in core, parallel and io only)" >&2
  exit 1
fi
echo "layering: $checked files, no upward include, no raw MPI outside core, parallel and io"
