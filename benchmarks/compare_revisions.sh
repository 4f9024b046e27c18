#!/usr/bin/env bash
# Run `annotate droid` on the same copy of the embedded sample with two revisions of the suite and
# compare the output folders file by file (benchmarks/output_diff.py). Both runs use this checkout's
# .venv; the older revision runs from a temporary git worktree.
#   bash benchmarks/compare_revisions.sh 25022ce [HEAD]
set -euo pipefail
base=${1:?usage: compare_revisions.sh BASE_REV [NEW_REV]}
new=${2:-HEAD}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; git -C "$root" worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cp -r "$root/pipelines/sample/data/droid/1.0.1" "$work/sample"  # one location: rows record where they came from
for side in base new; do
  rev=$([ "$side" = base ] && echo "$base" || echo "$new")
  git -C "$root" worktree add --detach "$work/$side" "$rev" >/dev/null
  (cd "$work/$side" && PYTHONPATH="$work/$side" "$root/.venv/bin/python" -m pipelines annotate droid \
     --out "$work/out-$side" --location "$work/sample" > "$work/$side.log" 2>&1) || { cat "$work/$side.log"; exit 1; }
done
cd "$root" && .venv/bin/python -m benchmarks.output_diff "$work/out-base/la/droid" "$work/out-new/la/droid"
