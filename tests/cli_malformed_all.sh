#!/usr/bin/env bash
# The malformed-input catalog across every file kind the CLI reads (docs/fuzz.md lists it):
# quantized checkpoints, model folders (config, weights, tokenizer), text corpora, LongBench
# JSONL, ids files, thresholds, tokenizer files, gate configs, golden manifests. Each case: exit
# code 2, a message naming the file and the problem, and no output file written. Under the
# ASan+UBSan build (CI) a crash or UB aborts, which this script reports as a wrong exit code.
# tests/test_malformed.c holds the safetensors/config/model-folder cases at the library level;
# these are end to end.
set -u
Q=$QVET
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=$QV_SOURCE_DIR
nfail=0 ncase=0
# mal NAME FILE_PATTERN PROBLEM_PATTERN OUTPUT -- command...
mal() {
  local name=$1 fpat=$2 ppat=$3 out=$4
  shift 5
  ncase=$((ncase + 1))
  rm -f "$out"
  "$@" > $T/stdout 2> $T/stderr
  local rc=$?
  local why=""
  [ $rc = 2 ] || why="exit $rc (expected 2)"
  [ -z "$why" ] && ! grep -q -- "$fpat" $T/stderr && why="message does not name the file ($fpat)"
  [ -z "$why" ] && ! grep -Eqi -- "$ppat" $T/stderr && why="message does not name the problem ($ppat)"
  [ -z "$why" ] && [ -e "$out" ] && why="output file $out was written"
  if [ -n "$why" ]; then
    echo "FAIL $name: $why; stderr: $(head -c 400 $T/stderr)"
    nfail=$((nfail + 1))
  else
    echo "ok   $name: $(head -1 $T/stderr | head -c 160)"
  fi
}
# patch FILE OFFSET HEXBYTES: overwrite bytes in place
patch() { printf "$(echo "$3" | sed 's/\(..\)/\\x\1/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# st_offset FILE TENSOR: absolute offset of a tensor's data in a safetensors file
st_offset() {
  local hl; hl=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  local b; b=$(head -c $((8 + hl)) "$1" | tail -c "$hl" | jq -r --arg t "$2" '.[$t].data_offsets[0]')
  echo $((8 + hl + b))
}

# ---- a small model folder and quantized checkpoints ----
$Q synth --out $T/m > /dev/null || { echo "FAIL: synth"; exit 1; }
printf 'The quick brown fox jumps over the lazy dog. %.0s' $(seq 1 40) > $T/text.txt
CK=$S/fuzz/seeds/qmodel  # tiny random-model checkpoints (hidden 32 / 128), docs/fuzz.md
O=$T/out.json

# quantized checkpoint (qvet info --quantized; qvet compare --quantized)
: > $T/empty.ckpt
mal q-empty empty.ckpt "empty file" $O -- $Q info --quantized $T/empty.ckpt --json $O
head -c 1000 $CK/w8a8.qckpt > $T/trunc.ckpt
mal q-truncated-header trunc.ckpt "runs past the end" $O -- $Q info --quantized $T/trunc.ckpt --json $O
sz=$(stat -c %s $CK/w8a8.qckpt); head -c $((sz - 64)) $CK/w8a8.qckpt > $T/trunc2.ckpt
mal q-truncated-data trunc2.ckpt "exceed data size" $O -- $Q info --quantized $T/trunc2.ckpt --json $O
mal q-plain-model model.safetensors "qvet|metadata" $O -- \
  $Q compare --ref ref-fp32 --cand ref-qoq --quantized $T/m/model.safetensors --text $T/text.txt --ctx 32 --max-tokens 64 --json $O
cp $CK/w8a8.qckpt $T/nan.ckpt
patch $T/nan.ckpt $(st_offset $T/nan.ckpt model.layers.0.self_attn.q_proj.scale) 007e
mal q-nan-scale nan.ckpt "q_proj.*(NaN|finite)" $O -- $Q info --quantized $T/nan.ckpt --json $O
cp $CK/w4a8-chn.qckpt $T/inf.ckpt
patch $T/inf.ckpt $(st_offset $T/inf.ckpt model.layers.0.mlp.down_proj.szero) 007c
mal q-inf-szero inf.ckpt "down_proj.*(Inf|finite)" $O -- $Q info --quantized $T/inf.ckpt --json $O
cp $CK/w4a8-g128.qckpt $T/s1.ckpt
patch $T/s1.ckpt $(st_offset $T/s1.ckpt model.layers.0.self_attn.k_proj.s1) 11
mal q-g128-s1-17 s1.ckpt "k_proj.*s1" $O -- $Q info --quantized $T/s1.ckpt --json $O
cp $CK/w4a8-g128.qckpt $T/ovf.ckpt
off=$(st_offset $T/ovf.ckpt model.layers.0.self_attn.v_proj.s1); patch $T/ovf.ckpt $off 10
off=$(st_offset $T/ovf.ckpt model.layers.0.self_attn.v_proj.sz1); patch $T/ovf.ckpt $off 00
off=$(st_offset $T/ovf.ckpt model.layers.0.self_attn.v_proj.qweight); patch $T/ovf.ckpt $off ffffffffffffffff
mal q-g128-dequant-overflow ovf.ckpt "v_proj.*(128|\[-128, 127\]|range)" $O -- $Q info --quantized $T/ovf.ckpt --json $O
sed 's/w8a8\\"/w9a9\\"/' $CK/w8a8.qckpt > $T/fmt.ckpt
mal q-unknown-format fmt.ckpt "w9a9|format" $O -- $Q info --quantized $T/fmt.ckpt --json $O
hdr='{"model.embed_tokens.weight":{"dtype":"F16","shape":[1099511627776,1099511627776],"data_offsets":[0,2]}}'
{ printf "$(printf '%016x' ${#hdr} | sed 's/\(..\)/\1 /g' | awk '{for(i=NF;i>0;i--) printf "\\x%s",$i}')"; printf '%s' "$hdr"; printf 'xx'; } > $T/absurd.ckpt
mal q-absurd-shape absurd.ckpt "overflow" $O -- $Q info --quantized $T/absurd.ckpt --json $O
mal q-other-model w8a8.qckpt "hidden|shape|does not match|differ" $O -- \
  $Q compare --model $T/m --ref ref-fp32 --cand ref-qoq --quantized $CK/w8a8.qckpt --text $T/text.txt --ctx 32 --max-tokens 64 --json $O

# model folder
cp -r $T/m $T/mtok; printf '{"model": {"type": "BPE", "vocab": {"a": 0' > $T/mtok/tokenizer.json
mal m-tokenizer-truncated tokenizer.json "JSON|parse" $O -- $Q ppl --model $T/mtok --engine ref-fp32 --text $T/text.txt --ctx 32 --json $O
cp -r $T/m $T/mtok2; printf '[1, 2, 3]' > $T/mtok2/tokenizer.json
mal m-tokenizer-array tokenizer.json "object|model" $O -- $Q ppl --model $T/mtok2 --engine ref-fp32 --text $T/text.txt --ctx 32 --json $O
cp -r $T/m $T/mcfg; jq '.hidden_size = 2147483648' $T/m/config.json > $T/mcfg/config.json
mal m-config-absurd-hidden config.json "hidden_size" $O -- $Q ppl --model $T/mcfg --engine ref-fp32 --text $T/text.txt --ctx 32 --json $O
cp -r $T/m $T/mcfg2; jq '.vocab_size = 16777216 | .intermediate_size = 16777216' $T/m/config.json > $T/mcfg2/config.json
mal m-config-shapes-vs-weights "model.safetensors\|config.json" "shape|does not match|missing" $O -- $Q ppl --model $T/mcfg2 --engine ref-fp32 --text $T/text.txt --ctx 32 --json $O
cp -r $T/m $T/mst; sz=$(stat -c %s $T/m/model.safetensors); head -c $((sz / 2)) $T/m/model.safetensors > $T/mst/model.safetensors
mal m-weights-truncated model.safetensors "exceed data size|past the end" $O -- $Q ppl --model $T/mst --engine ref-fp32 --text $T/text.txt --ctx 32 --json $O
cp -r $T/m $T/mnan; patch $T/mnan/model.safetensors $(st_offset $T/mnan/model.safetensors model.norm.weight) 007e
mal m-weights-nan model.safetensors "NaN" $O -- $Q ppl --model $T/mnan --engine ref-fp32 --text $T/text.txt --ctx 32 --json $O

# text corpora (ppl / compare)
printf 'valid start \xff\xfe\xc3 bad bytes\n' > $T/bad-utf8.txt
mal t-ppl-non-utf8 bad-utf8.txt "UTF-8" $O -- $Q ppl --engine ref-fp32 --text $T/bad-utf8.txt --ctx 32 --json $O
mal t-compare-non-utf8 bad-utf8.txt "UTF-8" $O -- $Q compare --ref ref-fp32 --cand ref-fp32 --text $T/bad-utf8.txt --ctx 32 --json $O
: > $T/empty.txt
mal t-ppl-empty empty.txt "empty|no tokens|too short|at least" $O -- $Q ppl --engine ref-fp32 --text $T/empty.txt --ctx 32 --json $O
mal t-compare-empty empty.txt "empty|no tokens|too short|at least" $O -- $Q compare --ref ref-fp32 --cand ref-fp32 --text $T/empty.txt --ctx 32 --json $O
mal t-ppl-zero-ctx "ctx" "ctx" $O -- $Q ppl --engine ref-fp32 --text $T/text.txt --ctx 0 --json $O
mal t-compare-zero-ctx "ctx" "ctx" $O -- $Q compare --ref ref-fp32 --cand ref-fp32 --text $T/text.txt --ctx 0 --json $O
mal t-ppl-text-is-dir "$T" "not a regular file" $O -- $Q ppl --engine ref-fp32 --text $T --ctx 32 --json $O
mal t-ppl-missing nothere.txt "No such file|not found|cannot open" $O -- $Q ppl --engine ref-fp32 --text $T/nothere.txt --ctx 32 --json $O

# LongBench prediction JSONL (qvet longbench --score)
lb() { rm -rf $T/lb; mkdir $T/lb; printf "$2" > $T/lb/$1.jsonl; }
lb qasper '{"pred": "a", "answers": ["a"], "all_classes": null, "length": 1}\n{"pred": "b", "answers": [\n'
mal lb-malformed-line "qasper.jsonl:2:" "invalid JSON" $O -- $Q longbench --score $T/lb --json $O
lb qasper '{"pred": "a", "answers": ["a"], "all_classes": null}\n\n{"pred": "a", "answers": ["a"], "all_classes": null}\n'
mal lb-blank-line qasper.jsonl "line 2|blank|empty" $O -- $Q longbench --score $T/lb --json $O
lb trec '{"pred": 5, "answers": ["a"], "all_classes": ["a"]}\n'
mal lb-pred-not-string trec.jsonl "pred" $O -- $Q longbench --score $T/lb --json $O
lb qasper '{"pred": "a", "all_classes": null}\n'
mal lb-answers-missing qasper.jsonl "answers" $O -- $Q longbench --score $T/lb --json $O
lb qasper '{"pred": "a\xff\xfe", "answers": ["a"], "all_classes": null}\n'
mal lb-non-utf8 qasper.jsonl "UTF-8|JSON|line 1" $O -- $Q longbench --score $T/lb --json $O
lb qasper '{"pred": "a", "answers": ["a"], "all_classes": null}\n'
mal lb-e-without-length qasper.jsonl "length" $O -- $Q longbench --score $T/lb --e --json $O

# ids files (qvet logits --ids-file), tokenizer files, thresholds
printf '[1, 2, ' > $T/ids.json
mal ids-not-json ids.json "JSON|parse" $O -- $Q logits --engine ref-fp32 --ids-file $T/ids.json --out $O
printf '[1, 2, 99999999]' > $T/ids2.json
mal ids-out-of-vocab "ids2.json\|99999999" "vocab|range" $O -- $Q logits --engine ref-fp32 --ids-file $T/ids2.json --out $O
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}' > $T/tok.json
mal tok-merge-unknown tok.json "merge|b|vocab" /nonexistent -- $Q tokenize --tokenizer $T/tok.json --text ab
printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 5000000}, "merges": []}}' > $T/tok2.json
mal tok-sparse-ids tok2.json "ids reach 5000000" /nonexistent -- $Q tokenize --tokenizer $T/tok2.json --text ab
printf '{"min_top1": ' > $T/thr.json
mal thresholds-broken thr.json "JSON|parse" $T/rep -- $Q validate --text $T/text.txt --thresholds $T/thr.json --report $T/rep

# quantized checkpoint metadata: a calibration sample count no integer type holds (UB before the
# range check, found by fz_qmodel_meta)
python3 - $CK/w8a8.qckpt $T/meta.ckpt <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
q = json.loads(h['__metadata__']['qvet'])
q['calibration']['samples'] = 1e300
h['__metadata__']['qvet'] = json.dumps(q)
hj = json.dumps(h).encode()
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hj)) + hj + b[8 + n:])
PY
mal q-meta-samples-huge meta.ckpt "calibration.samples" $O -- $Q info --quantized $T/meta.ckpt --json $O

# gate thresholds (qvet gate --config): checked before any case runs
G=$S/golden/gate.default.json
printf '{"thresholds": ' > $T/gate1.json
mal gate-not-json gate1.json "not a JSON object" $O -- $Q gate --config $T/gate1.json --json $O
jq 'del(.thresholds.model_kld_max.why)' $G > $T/gate2.json
mal gate-threshold-without-why gate2.json "thresholds.model_kld_max" $O -- $Q gate --config $T/gate2.json --json $O
jq '.thresholds.model_tokens.value = 2e77' $G > $T/gate3.json
mal gate-model-tokens-huge gate3.json "model_tokens" $O -- $Q gate --config $T/gate3.json --json $O
jq '.seed = -1' $G > $T/gate4.json
mal gate-seed-negative gate4.json "seed" $O -- $Q gate --config $T/gate4.json --json $O

# golden manifests (qvet golden check|update --dir): a broken entry is an input error, and update
# leaves the file as it was
gold() { rm -rf $T/g; mkdir -p $T/g/x; printf '%s' "$1" > $T/g/x/manifest.json; cp $T/g/x/manifest.json $T/g/before.json; }
gold '{"independent": false, "kind": "tokenizer-ids", "expected": {"ids": [1, 2'
mal golden-not-json x/manifest.json "not a JSON object" /nonexistent -- $Q golden check --dir $T/g --only x
gold '{"independent": false, "expected": {"ids": [1]}}'
mal golden-pin-without-kind x/manifest.json "kind" /nonexistent -- $Q golden update --dir $T/g --only x
cmp -s $T/g/x/manifest.json $T/g/before.json || { echo "FAIL golden-pin-without-kind: manifest rewritten"; nfail=$((nfail + 1)); }
gold '{"independent": false, "kind": "tokenizer-ids", "expected": [1, 2]}'
mal golden-expected-not-object x/manifest.json "expected" /nonexistent -- $Q golden update --dir $T/g --only x
cmp -s $T/g/x/manifest.json $T/g/before.json || { echo "FAIL golden-expected-not-object: manifest rewritten"; nfail=$((nfail + 1)); }
jq '.files[2].file = "../seq_64.safetensors"' $S/golden/synth-tiny/manifest.json > $T/m1.json; gold "$(cat $T/m1.json)"
mal golden-file-outside-entry x/manifest.json "files" /nonexistent -- $Q golden check --dir $T/g --only x
jq '.files[2].length = 1e300' $S/golden/synth-tiny/manifest.json > $T/m2.json; gold "$(cat $T/m2.json)"
mal golden-length-huge x/manifest.json "files" /nonexistent -- $Q golden check --dir $T/g --only x
jq '.model["model.safetensors_sha256"] = "abc"' $S/golden/synth-tiny/manifest.json > $T/m3.json; gold "$(cat $T/m3.json)"
mal golden-sha-malformed x/manifest.json "sha256" /nonexistent -- $Q golden check --dir $T/g --only x

echo "catalog: $ncase cases, $nfail failed"
[ $nfail = 0 ] || exit 1
echo "PASS cli_malformed_all"
