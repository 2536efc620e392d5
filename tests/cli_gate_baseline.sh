#!/usr/bin/env bash
# qvet gate --baseline end to end on a small selection (kernel, attention, golden pins, model,
# SmoothAttention): a run against its own JSON flags nothing; a baseline edited to hold better
# figures than this run (derived from the real JSON) fails with exit 1 and the JSON and JUnit
# name each regressed figure with its change; malformed baselines exit 2 naming the file.
# The kernel-time rule (GPU runs only) is unit-tested in tests/test_gate_baseline.c.
set -uo pipefail
Q=${QVET:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
SEL='^(kernels/w8a8 M=1 N=64|attn/nh=8 nkv=2 hd=32 ctx=40 T=8|golden/(kernel-defs|tok-synth)|model|quant)'

"$Q" gate --quick --only "$SEL" --json "$T/a.json" >"$T/a.out" || { cat "$T/a.out"; fail "clean run failed"; }

# against itself: every shared case compared, none regressed
"$Q" gate --quick --only "$SEL" --baseline "$T/a.json" --json "$T/b.json" --junit "$T/b.xml" >"$T/b.out"; rc=$?
[ $rc -eq 0 ] || { cat "$T/b.out"; fail "a run against its own baseline should pass (exit $rc)"; }
grep -q "cases compared, 0 regressed" "$T/b.out" || fail "no baseline summary line: $(tail -3 "$T/b.out")"
python3 - "$T/a.json" "$T/b.json" <<'PY' || fail "self-baseline JSON"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
base = [c for c in b['cases'] if c['group'] == 'baseline']
with_figs = [c for c in a['cases'] if c.get('figures')]
# every case with figures in both runs is compared (skipped GPU cases carry none)
assert len(base) == len(with_figs) > 8, (len(base), len(with_figs))
assert all(c['result'] == 'pass' for c in base)
m = [c for c in base if c['case'] == 'baseline/model/synth-tiny ref-qoq vs ref-fp32'][0]
assert set(m['figures']) == {'kld', 'kld_max_row', 'top1'}, m['figures']
assert all(f['change'] == 0 and not f['regressed'] for f in m['figures'].values())
k = [c for c in base if c['case'].startswith('baseline/kernels/')][0]
assert 'acc_mismatch' in k['figures'] and 'sat_mismatch' in k['figures'], k
PY

# a baseline with better figures than this run: KLD 0.01 lower, top-1 0.05 higher, the attention
# case's err/bound 0.2 lower, and one accumulator mismatch fewer than 0 cannot exist, so the
# kernel case's acc_mismatch is left as is (no regression there)
python3 - "$T/a.json" "$T/old.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for c in d['cases']:
    f = c.get('figures', {})
    if c['case'] == 'model/synth-tiny ref-qoq vs ref-fp32':
        f['kld'] -= 0.01
        f['top1'] += 0.05
    if c['case'].startswith('attn/') and 'worst_err_over_bound' in f:  # not the skipped GPU cases
        f['worst_err_over_bound'] -= 0.2
json.dump(d, open(sys.argv[2], 'w'))
PY
"$Q" gate --quick --only "$SEL" --baseline "$T/old.json" --json "$T/r.json" --junit "$T/r.xml" >"$T/r.out"; rc=$?
[ $rc -eq 1 ] || { cat "$T/r.out"; fail "a regression should exit 1 (exit $rc)"; }
grep -q "baseline/model/synth-tiny ref-qoq vs ref-fp32 .*FAIL.*REGRESSION kld +0.01 .*REGRESSION top1 -0.05" "$T/r.out" \
  || { grep baseline "$T/r.out"; fail "the failing line should name kld and top1 with their changes"; }
grep -q "reproduce: qvet gate --baseline $T/old.json --seed 1 --only '^model/synth-tiny ref-qoq vs ref-fp32\$'" "$T/r.out" \
  || fail "no reproduce command for the baseline case"
python3 - "$T/a.json" "$T/r.json" "$T/r.xml" <<'PY' || fail "regression JSON/JUnit"
import json, sys, xml.etree.ElementTree as ET
a, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
new = {c['case']: c for c in r['cases']}
old_m = [c for c in a['cases'] if c['case'] == 'model/synth-tiny ref-qoq vs ref-fp32'][0]['figures']
b = new['baseline/model/synth-tiny ref-qoq vs ref-fp32']
assert b['result'] == 'fail', b
f = b['figures']
assert f['kld']['regressed'] and abs(f['kld']['change'] - 0.01) < 1e-9 and f['kld']['allowed'] == 0.002, f['kld']
assert abs(f['kld']['old'] - (old_m['kld'] - 0.01)) < 1e-12 and f['kld']['new'] == old_m['kld']
assert f['top1']['regressed'] and abs(f['top1']['change'] + 0.05) < 1e-9, f['top1']
assert not f['kld_max_row']['regressed']
att = [c for n, c in new.items() if n.startswith('baseline/attn/')]
assert att and all(c['result'] == 'fail' and abs(c['figures']['worst_err_over_bound']['change'] - 0.2) < 1e-9 for c in att), att
others = [c for n, c in new.items() if n.startswith('baseline/') and not n.startswith(('baseline/attn/', 'baseline/model/synth-tiny ref-qoq'))]
assert others and all(c['result'] == 'pass' for c in others)
assert r['summary']['failed'] == 1 + len(att) and r['summary']['verdict'] == 'fail', r['summary']
suites = {s.get('name'): s for s in ET.parse(sys.argv[3]).getroot().findall('testsuite')}
fails = [tc for tc in suites['baseline'].findall('testcase') if tc.find('failure') is not None]
assert len(fails) == 1 + len(att)
msg = [tc.find('failure').get('message') for tc in fails if tc.get('name') == 'baseline/model/synth-tiny ref-qoq vs ref-fp32'][0]
assert 'REGRESSION kld +0.01 ' in msg and 'REGRESSION top1 -0.05 ' in msg, msg
PY
echo "edited baseline: regressions named in output, JSON and JUnit"

# malformed baselines: exit 2, the file named, nothing run
echo '{"schema": "qvet.gate/1", "seed": 1, "cases": [' > "$T/trunc.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['schema']='qvet.compare/1'; json.dump(d,open(sys.argv[2],'w'))" "$T/a.json" "$T/schema.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['cases'][0]['figures']={'acc_mismatch':'zero'}; json.dump(d,open(sys.argv[2],'w'))" "$T/a.json" "$T/fig.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); del d['cases']; json.dump(d,open(sys.argv[2],'w'))" "$T/a.json" "$T/nocases.json"
for f in trunc schema fig nocases missing; do
  "$Q" gate --quick --only "$SEL" --baseline "$T/$f.json" >"$T/m.out" 2>"$T/m.err"; rc=$?
  [ $rc -eq 2 ] || fail "malformed baseline $f: exit $rc, want 2"
  grep -q "$T/$f.json" "$T/m.err" || fail "malformed baseline $f: error should name the file: $(cat "$T/m.err")"
  [ ! -s "$T/m.out" ] || fail "malformed baseline $f: the gate should not run: $(head -2 "$T/m.out")"
done
"$Q" gate --quick --only "$SEL" --seed 7 --baseline "$T/a.json" >/dev/null 2>"$T/m.err"; rc=$?
[ $rc -eq 2 ] && grep -q "run with --seed 1" "$T/m.err" || fail "a baseline of another seed should exit 2 and say which seed (exit $rc)"
echo "malformed baselines: exit 2"
echo "PASS"
