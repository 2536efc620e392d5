#!/bin/bash
# The scheduler examples of docs/sharding.md (docs/examples/slurm, docs/examples/k8s) run as the
# schedulers would run them, with the variables Slurm and Kubernetes set simulated here, on the
# built-in synthetic model: 3 shards (one killed after its first chunk and run again, as a
# preempted task is requeued) and the merge step must give one run's compare result. submit.sh
# runs against a stand-in `sbatch` that records its arguments. No scheduler is needed.
set -u
Q=${QVET:?}
S=${QV_SOURCE_DIR:?}/docs/examples
command -v jq >/dev/null || { echo "SKIP cli_sharding_docs: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p $T/bin && ln -s "$(cd "$(dirname "$Q")" && pwd)/$(basename "$Q")" $T/bin/qvet
export PATH="$T/bin:$PATH"
for i in $(seq 1 400); do printf 'word%d and some more text. ' $((i % 97)); done > $T/text.txt
export EVAL_ARGS="--ref ref-fp32 --cand ref-fp32 --cand-round-bits 3 --text $T/text.txt --ctx 32 --max-tokens 320 --threads 1"
# shellcheck disable=SC2086
qvet compare $EVAL_ARGS --json $T/one.json > /dev/null || fail "one run"
same() { cmp <(jq -S '.chunks, .summary, .complete' "$1") <(jq -S '.chunks, .summary, .complete' "$2") || fail "$3 differs from one run"; }

# ---- Slurm: array tasks 0..2, task 1 preempted after one chunk and requeued, then the merge
export OUT=$T/slurm
task() { env SLURM_ARRAY_TASK_ID=$1 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=2 \
             SLURM_CPUS_PER_TASK=1 "${@:2}" bash $S/slurm/compare-array.sbatch > /dev/null 2> $T/task.err; }
task 0 || fail "slurm task 0"
task 1 QVET_TEST_KILL_AFTER=1; [ $? = 137 ] || fail "slurm task 1 was not killed"
[ "$(jq '.chunks | length' $OUT/compare.1.json)" = 1 ] || fail "the killed task left no partial shard"
task 1 || fail "slurm task 1, requeued"
grep -q "resuming: 1 chunks" $T/task.err || fail "the requeued task did not resume: $(cat $T/task.err)"
task 2 || fail "slurm task 2"
SHARDS=3 bash $S/slurm/compare-merge.sbatch > $T/merge.out 2>&1 || fail "slurm merge: $(cat $T/merge.out)"
same $T/one.json $OUT/compare.json "the Slurm array's merged result"
grep -q "KLD mean" $OUT/compare.txt || fail "compare.txt lacks the summary"
env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 \
  bash $S/slurm/compare-array.sbatch > /dev/null 2> $T/err; [ $? = 2 ] && grep -q "must be 0-2" $T/err || fail "array 1-3 accepted"
rm $OUT/compare.2.json
SHARDS=3 bash $S/slurm/compare-merge.sbatch > /dev/null 2> $T/err; [ $? = 2 ] && grep -q "compare.2.json is missing" $T/err || fail "merge without a shard"
# submit.sh: the array, then the merge dependent on the whole array
cat > $T/bin/sbatch <<EOF
#!/bin/sh
echo "\$*" >> $T/sbatch.log
echo "4242;cluster1"
EOF
chmod +x $T/bin/sbatch
bash $S/slurm/submit.sh 3 > /dev/null || fail "submit.sh"
[ "$(sed -n 1p $T/sbatch.log)" = "--parsable --array=0-2 compare-array.sbatch" ] || fail "sbatch call 1: $(sed -n 1p $T/sbatch.log)"
[ "$(sed -n 2p $T/sbatch.log)" = "--dependency=afterok:4242 --export=ALL,SHARDS=3 compare-merge.sbatch" ] || fail "sbatch call 2: $(sed -n 2p $T/sbatch.log)"

# ---- Kubernetes: the manifests' shell commands with the env they declare (SHARDS, OUT and
# EVAL_ARGS replaced by the test's), JOB_COMPLETION_INDEX as the Job controller sets it
if ! python3 -c 'import yaml' 2> /dev/null; then echo "SKIP the Kubernetes half: python3 with PyYAML absent"; echo "cli_sharding_docs: Slurm checks passed"; exit 0; fi
python3 - $S/k8s/compare-indexed-job.yaml $S/k8s/compare-merge-job.yaml $T <<'EOF' || fail "manifests"
import sys, yaml
docs = [d for f in sys.argv[1:3] for d in yaml.safe_load_all(open(f))]
pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "the shards' volume must be ReadWriteMany"
jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
shard, merge = jobs["qvet-compare"], jobs["qvet-compare-merge"]
spec = shard["spec"]
assert spec["completionMode"] == "Indexed"
for j in (shard, merge):
    c = j["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert int(env["SHARDS"]) == spec["completions"], "SHARDS must equal completions"
    vols = {v["name"]: v for v in j["spec"]["template"]["spec"]["volumes"]}
    out = next(m for m in c["volumeMounts"] if env["OUT"].startswith(m["mountPath"]))
    assert vols[out["name"]]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert c["command"][:2] == ["/bin/sh", "-c"]
    open(sys.argv[3] + "/" + j["metadata"]["name"] + ".sh", "w").write(c["command"][2])
EOF
export OUT=$T/k8s SHARDS=3
for i in 0 1 2; do JOB_COMPLETION_INDEX=$i sh $T/qvet-compare.sh > /dev/null 2>&1 || fail "k8s index $i"; done
sh $T/qvet-compare-merge.sh > $T/kmerge.out 2>&1 || fail "k8s merge: $(cat $T/kmerge.out)"
same $T/one.json $OUT/compare.json "the Indexed Job's merged result"
echo "cli_sharding_docs: all checks passed"
