#!/bin/bash
# `qvet kernels --check DIR` (docs/byo.md "Kernel level") on the committed fixture
# tests/fixtures/kcheck (written by tools/byo_kernel_example.py: PyTorch kernels, provenance.json):
#   - all 11 cases pass (exit 0), --json and --filter;
#   - one output value changed in a copy -> exit 1, the case named FAIL with its first mismatch
#     (an FP16 GEMM output, an INT32 accumulator, an A8 code, a KV4 page byte, a NaN output, a
#     fused producer's code, s_a and row sum);
#   - tests/fixtures/kcheck_plants (the script's --plant-set: the fused cases' inputs through
#     kernels with one planted bug each) -> every case FAIL, each for its own reason;
#   - malformed manifests and inputs -> exit 2, the message naming the file.
set -u
Q=${QVET:?}
FX=${QV_SOURCE_DIR:?}/tests/fixtures/kcheck
FXP=${QV_SOURCE_DIR:?}/tests/fixtures/kcheck_plants
command -v jq >/dev/null || { echo "SKIP cli_kcheck: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

$Q kernels --check $FX --json $T/ok.json > $T/out || fail "fixture: exit $? $(cat $T/out)"
grep -q "kernels --check: 11 checked, 11 passed, 0 failed, 0 input errors" $T/out || fail "summary: $(cat $T/out)"
[ "$(grep -c '  OK$' $T/out)" = 11 ] || fail "11 OK lines expected: $(cat $T/out)"
jq -e '.schema == "qvet.kernels-check/1" and .passed == 11 and .failed == 0 and ([.cases[].result] | all(. == "pass"))' \
    $T/ok.json > /dev/null || fail "json: $(cat $T/ok.json)"
jq -e '[.cases[] | select(.op == "w4a8_g128")] | length == 3 and all(.acc_mismatch == 0 and .out_beyond_bound == 0)' \
    $T/ok.json > /dev/null || fail "json g128 figures"
# the fused producers: the script's kernels sum in FP32 in their own order, divide by s_a, use
# 1/(1 + e) (docs/byo.md "Fused producers"): inside the bounds, s_a well inside (ratio < 0.5)
jq -e '[.cases[] | select(.op == "rmsnorm_a8" or .op == "silu_mul_a8")] | length == 3 and
       all(.code_mismatch == 0 and .s_a_beyond_bound == 0 and .rowsum_mismatch == 0 and .s_a_worst_ratio < 0.5)' \
    $T/ok.json > /dev/null || fail "json fused figures"
jq -e '[.cases[] | select(.op == "rmsnorm_a8")][0] | .sumsq == "fp32" and .rowsum_dumped' $T/ok.json > /dev/null \
    || fail "json rmsnorm_a8"
jq -e '[.cases[] | select(.op == "silu_mul_a8") | .input] == ["gate_up", "gate,up"]' $T/ok.json > /dev/null \
    || fail "json silu_mul_a8 inputs"
$Q kernels --check $FX --filter '^kv4' > $T/out || fail "filter exit $?"
grep -q "2 checked, 2 passed" $T/out || fail "filter: $(cat $T/out)"

# data start of tensor NAME in safetensors FILE: 8 + header length + data_offsets[0]
off() {
    local n; n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    echo $((8 + n + $(dd if="$1" bs=1 skip=8 count=$n 2>/dev/null | jq ".\"$2\".data_offsets[0]")))
}
# XORs byte number $3 of tensor $2 in file $1 with $4
flip() {
    local o; o=$(( $(off "$1" "$2") + $3 ))
    local b; b=$(od -An -tu1 -j $o -N1 "$1" | tr -d ' ')
    printf "\\$(printf %03o $(( b ^ $4 )))" | dd of="$1" bs=1 seek=$o conv=notrunc 2>/dev/null
}
mutated() { rm -rf $T/m; cp -r $FX $T/m; chmod -R u+w $T/m; }
expect_fail() { # $1 what, $2 case name, $3 pattern of the first-mismatch line
    $Q kernels --check $T/m > $T/out 2> $T/err; local rc=$?
    [ $rc = 1 ] || fail "$1: exit $rc, expected 1: $(cat $T/out $T/err)"
    grep -q "^$2 .* FAIL$" $T/out || fail "$1: case '$2' not named FAIL: $(cat $T/out)"
    grep -q "$3" $T/out || fail "$1: no '$3' in: $(cat $T/out)"
    grep -q "10 passed, 1 failed" $T/out || fail "$1: other cases affected: $(cat $T/out)"
}

mutated; flip $T/m/w8a8.safetensors y $((2 * (1 * 32 + 5))) 1   # y[1][5] one FP16 ulp off
expect_fail "FP16 output" "w8a8 M=4 N=32 K=96" "first mismatch m=1 n=5: acc 3*"
mutated; flip $T/m/w4a8_g128.safetensors acc $((4 * 70)) 4     # acc[1][6] += or -= 4
expect_fail "accumulator" "w4a8_g128 packed M=5 N=64 K=256" "acc: MISMATCH (1)  out: bit-exact"
mutated; flip $T/m/a8_quant.safetensors q 300 2                 # code [1][44]
expect_fail "A8 code" "a8_quant M=6 K=256" "first mismatch m=1 k=44"
mutated; flip $T/m/kv4_pages.safetensors pages 700 16           # page 1, byte 60
expect_fail "KV4 page byte" "kv4_quant paged T=20 H=2 D=32 page=16" "first mismatch: page 1 byte 60"
mutated; o=$(off $T/m/w4a8_chn.safetensors y)
printf '\x00\x7e' | dd of=$T/m/w4a8_chn.safetensors bs=1 seek=$((o + 2 * 7)) conv=notrunc 2>/dev/null  # y[0][7] NaN
expect_fail "NaN output" "w4a8_chn packed M=5 N=64 K=128" "first mismatch m=0 n=7: .*out 0x7e00"
RMS="rmsnorm_a8 M=5 K=128"; SILU="silu_mul_a8 gate_up M=4 I=96"
mutated; flip $T/m/rmsnorm_a8.safetensors q 300 2                  # code [2][44]
expect_fail "fused code" "$RMS" "first mismatch m=2 k=44: code"
mutated; flip $T/m/rmsnorm_a8.safetensors s_a 6 1                  # s_a[1] * (1 +- 2^-7)
expect_fail "fused s_a" "$RMS" "codes: bit-exact (0 ties)  s_a: MISMATCH (1)"
grep -q "first mismatch m=1: s_a .* beyond its bound (exact " $T/out || fail "fused s_a line: $(cat $T/out)"
mutated; flip $T/m/rmsnorm_a8.safetensors rowsum 12 1              # rowsum[3]
expect_fail "fused rowsum" "$RMS" "first mismatch m=3: rowsum"
mutated; flip $T/m/silu_mul_a8.safetensors q 100 1                 # code [1][4]
expect_fail "silu code" "$SILU" "first mismatch m=1 k=4: code"

# ---- planted bugs in the fused kernels: every case fails, each for its reason ----
$Q kernels --check $FXP > $T/out 2> $T/err; rc=$?
[ $rc = 1 ] || fail "plants: exit $rc, expected 1: $(cat $T/out $T/err)"
grep -q "5 checked, 0 passed, 5 failed, 0 input errors" $T/out || fail "plants summary: $(cat $T/out)"
plant() { # $1 plant, $2 pattern on its line, $3 pattern on its first-mismatch line
    grep -A1 "^plant $1: .* FAIL$" $T/out > $T/p || fail "plant $1: no FAIL line: $(cat $T/out)"
    grep -q "$2" $T/p && grep -q "$3" $T/p || fail "plant $1: expected '$2' and '$3' in: $(cat $T/p)"
}
# eps after the square root: only the row whose mean square (1e-6) is below eps shows it
plant eps_after_sqrt "codes: bit-exact (0 ties)  s_a: MISMATCH (1)" "first mismatch m=2: s_a"
plant rms_k_minus_1 "codes: bit-exact (0 ties)  s_a: MISMATCH (4)" "first mismatch m=0: s_a"
plant trunc "codes: MISMATCH" "first mismatch m=0 k=0: code 30 (ref 31"
plant silu_of_up "codes: MISMATCH" "first mismatch m=0 k=1: code"
plant amax_wrong_row "codes: MISMATCH .*s_a: MISMATCH (4)" "first mismatch m=0 k=1: code"

# ---- bad input: exit 2 naming the file ----
expect2() { # $1 what, $2 pattern in stderr
    $Q kernels --check $T/m > $T/out 2> $T/err; local rc=$?
    [ $rc = 2 ] || fail "$1: exit $rc, expected 2: $(cat $T/out $T/err)"
    grep -q -- "$2" $T/err || fail "$1: no '$2' in: $(cat $T/err)"
}
edit() { jq "$1" $FX/manifest.json > $T/m/manifest.json; }
mutated; rm $T/m/manifest.json; expect2 "missing manifest" "m/manifest.json: cannot open"
mutated; echo '{"schema": ' > $T/m/manifest.json; expect2 "bad JSON" "m/manifest.json: not valid JSON (line 1"
mutated; edit '.schema = "qvet.kernel-check/9"'; expect2 "schema" 'manifest.json: "schema" must be "qvet.kernel-check/1", not qvet.kernel-check/9'
mutated; edit '.cases = []'; expect2 "no cases" '"cases" must be a non-empty array'
mutated; edit '.cases[4].op = "w9a9"'; expect2 "unknown op" "manifest.json: case 'w8a8 M=4 N=32 K=96': unknown op \"w9a9\""
mutated; edit '.cases[4].shape.K = 128'
expect2 "shape mismatch" "m/w8a8.safetensors: case 'w8a8 M=4 N=32 K=96': tensor 'x' (x) has shape \[4, 96\], the manifest's shape gives \[4, 128\]"
mutated; edit '.cases[4].shape.K = 100'; expect2 "K not a multiple of 32" "w8a8 needs K a multiple of 32"
mutated; edit '.cases[4].tensors = {"y": "acc"}'; expect2 "wrong dtype" "m/w8a8.safetensors: .*tensor 'acc' (y) is I32, expected F16"
mutated; edit '.cases[4].tensors = {"s_w": "nope"}'; expect2 "missing tensor" "m/w8a8.safetensors: .*no tensor 'nope' (input s_w of w8a8)"
mutated; edit '.cases[4].file = "gone.safetensors"'; expect2 "missing file" "m/gone.safetensors: case 'w8a8 M=4 N=32 K=96': no such file"
mutated; edit '.cases[4].file = "../w8a8.safetensors"'; expect2 "path outside DIR" "must be a relative path inside the directory"
mutated; edit '.cases[4].tensors = {"scales": "s_w"}'; expect2 "unknown role" 'w8a8 (layout qvet) has no tensor role "scales"'
mutated; edit '.cases[4].shapes = .cases[4].shape'; expect2 "unknown key" 'case 4: unknown key "shapes"'
mutated; edit '.cases[1].name = .cases[0].name'; expect2 "duplicate name" "used twice (cases 0 and 1)"
mutated; edit '.cases[6].layout = "vllm"'; expect2 "bad layout" '"layout" is "qvet" or "qserve"'
mutated; o=$(off $T/m/w8a8.safetensors s_a)
printf '\x00\x00\xc0\x7f' | dd of=$T/m/w8a8.safetensors bs=1 seek=$((o + 4)) conv=notrunc 2>/dev/null   # s_a[1] NaN
expect2 "NaN input" "m/w8a8.safetensors: case 'w8a8 M=4 N=32 K=96': input tensor 's_a' (s_a) element 1 is NaN or Inf"
grep -q "^w8a8 M=4 N=32 K=96 .* ERROR " $T/out || fail "NaN input: case line: $(cat $T/out)"
mutated; flip $T/m/w4a8_chn.safetensors rowsum 0 1
expect2 "inconsistent rowsum" "m/w4a8_chn.safetensors: .*tensor 'rowsum' (rowsum) \[0\] = .*, but the codes of row 0 sum to"
mutated; flip $T/m/w4a8_g128_unpacked.safetensors w 3 16; expect2 "code > 15" "tensor 'w' (w, unpacked): code \[0\]\[3\] = [0-9]* is not UINT4"
# fused producers' inputs
mutated; edit 'del(.cases[8].eps)'; expect2 "missing eps" "manifest.json: case '$RMS': rmsnorm_a8 needs \"eps\""
mutated; edit '.cases[8].eps = "1e-5"'; expect2 "eps not a number" '"eps" must be a number in \[2^-126, 1\]'
mutated; edit '.cases[8].eps = 0'; expect2 "eps zero" '"eps" must be a number in \[2^-126, 1\]'
mutated; edit '.cases[5].eps = 1e-5'; expect2 "eps elsewhere" "case 'a8_quant M=6 K=256': \"eps\" applies to rmsnorm_a8 only"
mutated; edit '.cases[8].sumsq = "fp16"'; expect2 "bad sumsq" '"sumsq" is "fp32" or "fp64"'
mutated; edit '.cases[8].layout = "qserve"'; expect2 "qserve fused" 'rmsnorm_a8 has no "qserve" layout'
mutated; edit '.cases[9].shape = {"M": 4, "K": 96}'; expect2 "silu shape key" 'shape key "K" does not apply to silu_mul_a8'
mutated; edit '.cases[8].shape.K = 64'
expect2 "fused shape mismatch" "m/rmsnorm_a8.safetensors: case '$RMS': tensor 'x' (x) has shape \[5, 128\], the manifest's shape gives \[5, 64\]"
mutated; edit '.cases[9].shape.I = 48'
expect2 "gate_up shape" "m/silu_mul_a8.safetensors: .*tensor 'gate_up' (gate_up) has shape \[4, 192\], the manifest's shape gives \[4, 96\]"
mutated; edit '.cases[10].tensors.up = "nope"'
expect2 "silu without up" "m/silu_mul_a8_split.safetensors: case 'silu_mul_a8 split M=3 I=64': silu_mul_a8 needs gate and up .*no tensor for up"
mutated; o=$(off $T/m/rmsnorm_a8.safetensors x)
printf '\x00\x00\xc0\x7f' | dd of=$T/m/rmsnorm_a8.safetensors bs=1 seek=$((o + 4 * 3)) conv=notrunc 2>/dev/null  # x[0][3] NaN
expect2 "NaN in x" "m/rmsnorm_a8.safetensors: case '$RMS': input tensor 'x' (x) element 3 is NaN or Inf"
mutated; o=$(off $T/m/rmsnorm_a8.safetensors w)
printf '\x00\x00\x80\x7f' | dd of=$T/m/rmsnorm_a8.safetensors bs=1 seek=$((o + 4 * 9)) conv=notrunc 2>/dev/null  # w[9] Inf
expect2 "Inf in w" "input tensor 'w' (w) element 9 is NaN or Inf"
$Q kernels --check $FX --seed 3 2> $T/err; [ $? = 2 ] || fail "--check with --seed: exit"
$Q kernels --check 2> $T/err; [ $? = 2 ] || fail "--check without DIR: exit"
echo "cli_kcheck: ok"
