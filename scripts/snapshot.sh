#!/usr/bin/env bash
# Golden outputs of a matrix of CLI runs, for refactors that must not change a bit:
#   scripts/snapshot.sh OUT_DIR [BINARY]
# Writes OUT_DIR/<case>/{W.npy,H.npy,run.json} with every time ("seconds") removed from
# run.json, then `diff -r` two such folders. Needs ../shared/data (CBCL, ORL).
set -euo pipefail
out=$1
bin=${2:-target/release/facenmf}
data=${FACENMF_DATA:-../shared/data}
cbcl=$data/cbcl
orl=$data/orl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# A small subset of CBCL keeps the matrix quick; ORL stays whole for the multilevel start.
mkdir -p "$work/small"
for f in $(ls "$cbcl" | sort | sed -n 1,300p); do ln -s "$(realpath "$cbcl/$f")" "$work/small/$f"; done

run() {
  local name=$1 dir=$2; shift 2
  "$bin" learn "$dir" -q -o "$work/$name" "$@" --threads 2 >/dev/null 2>&1
  mkdir -p "$out/$name"
  cp "$work/$name/W.npy" "$work/$name/H.npy" "$out/$name/"
  python3 - "$work/$name/run.json" "$out/$name/run.json" <<'PY'
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ("seconds",)}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
run = strip(json.load(open(sys.argv[1])))
run.pop("folder", None)
json.dump(run, open(sys.argv[2], "w"), indent=1, sort_keys=True)
PY
  echo "$name"
}

s=$work/small
run hals      "$s" -r 12 --max-iter 60
run cd        "$s" -r 12 --solver cd --max-iter 60
run mu        "$s" -r 12 --solver mu --max-iter 60
run fpgm      "$s" -r 12 --solver fpgm --max-iter 60
run anls      "$s" -r 12 --solver anls --max-iter 30
run kl        "$s" -r 10 --solver mu --loss kl --max-iter 40
run beta      "$s" -r 10 --solver mu --loss beta:1.5 --max-iter 40
run enet      "$s" -r 12 --alpha-w 0.01 --alpha-h 0.01 --l1-ratio 0.5 --max-iter 60
run enet-mu   "$s" -r 12 --solver mu --alpha-w 0.01 --l1-ratio 1 --max-iter 60
run sparse    "$s" -r 12 --sparsity-w 0.6 --max-iter 40
run sparse-h  "$s" -r 12 --sparsity-h 0.5 --solver cd --max-iter 40
run hide      "$s" -r 12 --hide-fraction 0.2 --max-iter 60
run hide-cd   "$s" -r 12 --hide-fraction 0.2 --solver cd --max-iter 60
run mask      "$s" -r 12 --mask "$s" --max-iter 40
run runs      "$s" -r 8 --init random --runs 3 --max-iter 40
run nndsvd    "$s" -r 12 --init nndsvd --max-iter 40
run nndsvdar  "$s" -r 12 --init nndsvdar --max-iter 40
run spa       "$s" -r 12 --init spa --max-iter 40
run f64       "$s" -r 12 --precision f64 --max-iter 60
run f64-cd    "$s" -r 12 --precision f64 --solver cd --max-iter 60
run init-from "$s" -r 12 --init-from "$work/hals" --max-iter 20
run orl-ml    "$orl" -r 49 --max-iter 30
run orl-ml40  "$orl" -r 40 --max-iter 20 --precision f64
run orl-noml  "$orl" -r 20 --multilevel off --max-iter 20
