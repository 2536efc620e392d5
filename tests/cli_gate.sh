#!/usr/bin/env bash
# qvet gate / qvet golden: exit codes, reports, determinism (three runs give identical JSON minus
# the "timing" object), JUnit structure, golden update refusing independent entries, a broken
# pin detected, and no false alarms over 20 seeds of the kernel matrix.
set -uo pipefail
Q=${QVET:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# usage errors -> 2
"$Q" gate --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option should exit 2"
echo '{"thresholds": {}}' > "$T/bad.json"
"$Q" gate --config "$T/bad.json" 2>"$T/err" >/dev/null; [ $? -eq 2 ] || fail "config without thresholds should exit 2"
grep -q "thresholds.model_tokens" "$T/err" || fail "config error should name the missing threshold"

# three quick runs (kernels, attention, golden pins, model checks): identical JSON minus timing
for i in 1 2 3; do
  "$Q" gate --quick --only '^(kernels|attn|golden/(kernel-defs|tok-synth)|model|quant)' --json "$T/g$i.json" --junit "$T/g$i.xml" >"$T/out$i" \
    || { cat "$T/out$i"; fail "clean quick gate run $i failed"; }
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d.pop('timing'); json.dump(d, open(sys.argv[2],'w'), sort_keys=True)" "$T/g$i.json" "$T/n$i.json"
done
cmp -s "$T/n1.json" "$T/n2.json" && cmp -s "$T/n1.json" "$T/n3.json" || fail "gate JSON differs between runs"
grep -q "GPU cases skipped" "$T/out1" || grep -q "gpu: NVIDIA\|gpu: .*device [0-9]" "$T/out1" || fail "no line on skipped GPU cases"
python3 - "$T/g1.xml" "$T/g1.json" <<'PY' || fail "JUnit/JSON structure"
import sys, json, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
assert r.tag == 'testsuites'
cases = [c for s in r.findall('testsuite') for c in s.findall('testcase')]
j = json.load(open(sys.argv[2]))
assert len(cases) == len(j['cases']) > 50, (len(cases), len(j['cases']))
assert int(r.get('tests')) == len(cases)
assert sum(1 for c in cases if c.find('skipped') is not None) == j['summary']['skipped']
assert j['summary']['failed'] == 0 and j['summary']['verdict'] == 'pass'
m = [c for c in j['cases'] if c['case'].startswith('model/synth-tiny ref-qoq')][0]
assert 0 <= m['figures']['kld'] < 0.01 and m['figures']['top1'] > 0.85, m
PY

# a failing case: exit 1, a reproduce command in the output, <failure> in JUnit
mkdir -p "$T/golden/tok-synth"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['expected']['ids'][3]+=1; json.dump(d,open(sys.argv[2],'w'))" \
  "$QV_SOURCE_DIR/golden/tok-synth/manifest.json" "$T/golden/tok-synth/manifest.json"
"$Q" gate --quick --only '^golden/' --golden-dir "$T/golden" --junit "$T/f.xml" --json "$T/f.json" >"$T/fout"; rc=$?
[ $rc -eq 1 ] || fail "a changed pin should fail the gate (exit $rc)"
grep -q "reproduce: qvet golden check --only tok-synth" "$T/fout" || fail "no reproduce command"
grep -q "<failure" "$T/f.xml" || fail "no <failure> element"
"$Q" golden check --dir "$T/golden" >"$T/gc"; [ $? -eq 1 ] || fail "golden check should exit 1 on a changed pin"
grep -q "ids: 1 of" "$T/gc" || fail "golden check should say which values changed: $(cat "$T/gc")"
# update shows the diff and rewrites; independent entries are refused
"$Q" golden update --only tok-synth --dir "$T/golden" >"$T/gu" || fail "golden update failed"
grep -q "ids: 1 of .* max change 1" "$T/gu" || fail "update should print the diff first: $(cat "$T/gu")"
"$Q" golden check --dir "$T/golden" >/dev/null || fail "updated pin should check clean"
"$Q" golden update --only synth-tiny >/dev/null 2>"$T/ue"; [ $? -eq 2 ] || fail "updating an independent golden should exit 2"
grep -q "never regenerates" "$T/ue" || fail "refusal should say why"

# no false alarms: the quick kernel matrix (CPU emulation) and the attention cases over 20 seeds
# (.ci/run runs the full matrix over 20 seeds)
for s in $(seq 101 120); do
  "$Q" gate --quick --only '^(kernels|attn)/' --seed "$s" >"$T/s$s" \
    || { grep -E "FAIL|ERROR" "$T/s$s" | head; fail "false alarm at seed $s"; }
done
echo "20 seeds: no false alarm"
echo "PASS"
