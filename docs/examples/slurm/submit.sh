#!/bin/bash
# Submits the sharded compare as an array of SHARDS tasks, then its merge, dependent on the
# whole array: bash submit.sh [SHARDS] (docs/sharding.md). EVAL_ARGS and OUT, if exported,
# reach both jobs (sbatch passes the environment on by default).
set -euo pipefail
n=${1:-8}
cd "$(dirname "$0")"
jid=$(sbatch --parsable --array="0-$((n - 1))" compare-array.sbatch)
jid=${jid%%;*} # --parsable prints "id" or "id;cluster"
sbatch --dependency="afterok:$jid" --export="ALL,SHARDS=$n" compare-merge.sbatch
echo "array job $jid: $n shards; the merge runs when all of them succeed"
