#!/usr/bin/env bash
# Resolve the direct dependencies (the lines above "# --- transitive ---" in requirements.txt)
# in a scratch virtualenv and rewrite requirements.txt with every version pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
direct=$(sed '/^# --- transitive ---/,$d' requirements.txt | grep -v '^#' | grep -v '^$')
scratch=$(mktemp -d)
python3 -m venv "$scratch"
"$scratch/bin/pip" install --quiet $direct
{
  sed '/^# --- transitive ---/,$d' requirements.txt
  echo "# --- transitive ---"
  names=$(echo "$direct" | sed -E 's/[<>=\[].*//' | tr 'A-Z_' 'a-z-' | paste -sd'|')
  "$scratch/bin/pip" freeze | grep -viE "^(${names}|pip)==" 
} > requirements.txt.new
mv requirements.txt.new requirements.txt
rm -rf "$scratch"
echo "requirements.txt re-pinned"
