#!/bin/bash
# The qv_kernel_plugin ABI (include/qvet/kernel_plugin.h, docs/byo.md section 6) with the test
# plugins of tests/plugins/ (one source, qvp_ref.c, built with planted variants):
#   - qvp_ref (a plain reimplementation from the header and docs/layout.md): `kernels --plugin`
#     quick matrix all bit-exact, `gate --plugin` passes (JUnit + JSON name the plugin);
#   - qvp_zpsign (zero point added): the gate fails, on exactly the per-channel cases;
#   - qvp_nibble (nibbles swapped): W4 accumulators mismatch, W8A8 still passes;
#   - qvp_partial: missing kernels SKIP visibly, a missing _acc entry reads "acc: n/a", and a run
#     where every case skips is not a pass;
#   - qvp_error (an op returns QV_KP_ERR_DEVICE), qvp_scribble (an op writes its const input):
#     ERROR lines, exit 1, no crash;
#   - qvp_badabi, qvp_nosym, a missing file, a non-ELF file: exit 2 naming the library;
#   - option combinations refused with exit 2.
set -u
Q=${QVET:?}
P=${QV_BUILD_DIR:?}/tests/plugins
command -v jq >/dev/null || { echo "SKIP cli_plugin: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
run() { "$@" > $T/out 2> $T/err; echo $? > $T/rc; }
rc() { cat $T/rc; }

# ---- the reference plugin passes ----
run $Q kernels --plugin $P/libqvp_ref.so --quick --json $T/k.json
[ "$(rc)" = 0 ] || fail "ref kernels: exit $(rc): $(tail -5 $T/out) $(cat $T/err)"
n=$(grep -c ' plugin   acc: bit-exact  out: bit-exact .* OK$' $T/out)
grep -q "kernels: $n run, $n bit-exact, 0 failed, 0 errors; 0 cases skipped" $T/out || fail "ref summary: $(tail -2 $T/out)"
[ "$n" -ge 60 ] || fail "ref: only $n cases ran"
grep -q "max-scales .* sat [1-9][0-9]*/[1-9][0-9]* *OK$" $T/out || fail "ref: no overflow case counted: $(grep max-scales $T/out)"
jq -e '.plugin.name == "qvp-ref" and .passed > 0 and .failed == 0 and .errors == 0 and
       ([.cases[] | select(.backend == "plugin")] | length) == .passed' $T/k.json > /dev/null || fail "ref json"
run $Q gate --plugin $P/libqvp_ref.so --quick --json $T/g.json --junit $T/g.xml
[ "$(rc)" = 0 ] || fail "ref gate: exit $(rc): $(grep -E 'FAIL|ERROR' $T/out | head -5) $(cat $T/err)"
jq -e '.summary.verdict == "pass" and .plugin.name == "qvp-ref" and
       ([.cases[] | select(.group == "kernels" and .result == "pass")] | length) > 0 and
       ([.cases[] | select(.group == "corpus" and .result == "pass")] | length) > 0 and
       ([.cases[] | select(.group != "kernels" and .group != "corpus")] | length) == 0' $T/g.json > /dev/null \
    || fail "ref gate json: $(jq -c .summary $T/g.json)"
grep -q 'testsuite' $T/g.xml || fail "ref gate junit"

# ---- a planted zero-point sign: the gate fails, on the per-channel cases only ----
run $Q gate --plugin $P/libqvp_zpsign.so --quick --only '^kernels/' --json $T/z.json  # (corpus: seconds under ASan)
[ "$(rc)" = 1 ] || fail "zpsign gate: exit $(rc), expected 1: $(tail -3 $T/out) $(cat $T/err)"
jq -e '.summary.verdict == "fail" and
       ([.cases[] | select(.result == "fail")] | length) > 0 and
       ([.cases[] | select(.result == "fail") | .case | startswith("kernels/w4a8_chn")] | all) and
       ([.cases[] | select((.case | startswith("kernels/w8a8") or startswith("kernels/w4a8_g128")) and .result != "pass")] | length) == 0' \
    $T/z.json > /dev/null || fail "zpsign: failures not exactly the per-channel cases: $(jq -c '[.cases[] | select(.result != "pass") | .case]' $T/z.json)"
grep -q "reproduce: qvet kernels --plugin $P/libqvp_zpsign.so --filter '^w4a8_chn " $T/out || fail "zpsign: no reproduce command"

# ---- swapped nibbles: W4 accumulators wrong, W8A8 untouched ----
run $Q kernels --plugin $P/libqvp_nibble.so --quick --filter '^w4a8_(chn|g128) M=3 N=160 '
[ "$(rc)" = 1 ] || fail "nibble: exit $(rc)"
[ "$(grep -c 'acc: MISMATCH .* FAIL$' $T/out)" = 2 ] || fail "nibble: $(cat $T/out)"
run $Q kernels --plugin $P/libqvp_nibble.so --quick --filter '^w8a8 M=3 '
[ "$(rc)" = 0 ] || fail "nibble w8a8: exit $(rc): $(cat $T/out)"

# ---- a partial plugin: visible skips, "acc: n/a", all-skipped is not a pass ----
run $Q kernels --plugin $P/libqvp_partial.so --quick
[ "$(rc)" = 0 ] || fail "partial: exit $(rc): $(tail -3 $T/out)"
grep -q "plugin 'qvp-ref' (.*): w8a8 (no _acc), w4a8_chn$" $T/out || fail "partial: header $(head -1 $T/out)"
s=$(grep -c "^w4a8_g128 .* SKIP plugin 'qvp-ref' does not implement w4a8_g128$" $T/out)
[ "$s" -gt 0 ] && grep -q "0 errors; $s cases skipped (ops the plugin lacks)" $T/out || fail "partial skips: $(tail -1 $T/out)"
grep -q "^w8a8 M=1 N=64 K=128 random .* acc: n/a  out: bit-exact .* OK$" $T/out || fail "partial: acc n/a"
run $Q kernels --plugin $P/libqvp_partial.so --quick --filter '^w4a8_g128'
[ "$(rc)" = 1 ] && grep -q "no case ran on the plugin" $T/out || fail "partial all-skipped: exit $(rc) $(tail -2 $T/out)"
run $Q gate --plugin $P/libqvp_partial.so --quick --only '^kernels/w4a8_g128'
[ "$(rc)" = 1 ] && grep -q "no case ran on the plugin" $T/out || fail "partial gate all-skipped: exit $(rc) $(tail -2 $T/out)"

# ---- an op's error and a scribbled input: ERROR lines, no crash ----
run $Q kernels --plugin $P/libqvp_error.so --quick --filter '^w4a8_g128 M=(1|3) '
[ "$(rc)" = 1 ] || fail "error plugin: exit $(rc) (a crash?): $(cat $T/out $T/err)"
grep -q "ERROR plugin 'qvp-ref': w4a8_g128_gemm returned 3 (QV_KP_ERR_DEVICE): planted failure: device lost" $T/out \
    || fail "error plugin line: $(cat $T/out)"
grep -q "0 bit-exact, 0 failed, [1-9][0-9]* errors" $T/out || fail "error plugin summary: $(tail -2 $T/out)"
run $Q gate --plugin $P/libqvp_error.so --quick --only '^kernels/w4a8_g128 M=1 N=64 K=128 '
[ "$(rc)" = 1 ] && grep -q "ERROR plugin 'qvp-ref': w4a8_g128_gemm" $T/out || fail "error plugin gate: $(rc) $(cat $T/out)"
run $Q kernels --plugin $P/libqvp_scribble.so --filter '^w8a8 M=3 N=160 '
[ "$(rc)" = 1 ] && grep -q "ERROR plugin 'qvp-ref': w8a8_gemm_acc wrote into its input 'x'" $T/out || fail "scribble: $(cat $T/out)"

# ---- libraries qvet must refuse: exit 2 naming the library ----
expect2() { # $1 what, $2 pattern in stderr, rest: command
    local what=$1 pat=$2; shift 2
    run "$@"
    [ "$(rc)" = 2 ] || fail "$what: exit $(rc), expected 2: $(cat $T/out $T/err)"
    grep -q -- "$pat" $T/err || fail "$what: no '$pat' in: $(cat $T/err)"
}
expect2 "ABI mismatch" "libqvp_badabi.so: plugin ABI version 2, this qvet speaks version 1" $Q kernels --plugin $P/libqvp_badabi.so
expect2 "missing symbol" "libqvp_nosym.so: no symbol 'qv_kernel_plugin_register'" $Q kernels --plugin $P/libqvp_nosym.so
expect2 "gate ABI mismatch" "libqvp_badabi.so: plugin ABI version 2" $Q gate --plugin $P/libqvp_badabi.so --quick
expect2 "missing file" "$T/none.so: plugin library: No such file" $Q kernels --plugin $T/none.so
echo "not a library" > $T/text.so
expect2 "not ELF" "$T/text.so: cannot load the plugin" $Q kernels --plugin $T/text.so
expect2 "with --backend" "--backend does not go with it" $Q kernels --plugin $P/libqvp_ref.so --backend cpu
expect2 "with --check" "one or the other" $Q kernels --plugin $P/libqvp_ref.so --check $T
expect2 "gate --self-test" "do not apply" $Q gate --plugin $P/libqvp_ref.so --self-test
echo "cli_plugin: ok"
