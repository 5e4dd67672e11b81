#!/usr/bin/env bash
# The layering rule: core -> nn -> io -> (train, parallel, transfer) -> stages -> cli. A file under
# include/mimic/<area>/ or src/<area>/ may include mimic headers of its own level or below, never above.
# Usage: tests/layering.sh [repository root]; prints every upward include and exits 1 if there is one.
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
bad=0 checked=0
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
if [ $bad -ne 0 ]; then
  echo "layering: upward includes found (rule: core -> nn -> io -> train/parallel/transfer -> stages -> cli)" >&2
  exit 1
fi
echo "layering: $checked files, no upward include"
