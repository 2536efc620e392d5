#!/bin/bash
# `qvet kernels --check DIR` (docs/byo.md "Kernel level") on the committed fixture
# tests/fixtures/kcheck (written by tools/byo_kernel_example.py: PyTorch kernels, provenance.json):
#   - all 8 cases pass (exit 0), --json and --filter;
#   - one output value changed in a copy -> exit 1, the case named FAIL with its first mismatch
#     (an FP16 GEMM output, an INT32 accumulator, an A8 code, a KV4 page byte, a NaN output);
#   - malformed manifests and inputs -> exit 2, the message naming the file.
set -u
Q=${QVET:?}
FX=${QV_SOURCE_DIR:?}/tests/fixtures/kcheck
command -v jq >/dev/null || { echo "SKIP cli_kcheck: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

$Q kernels --check $FX --json $T/ok.json > $T/out || fail "fixture: exit $? $(cat $T/out)"
grep -q "kernels --check: 8 checked, 8 passed, 0 failed, 0 input errors" $T/out || fail "summary: $(cat $T/out)"
[ "$(grep -c '  OK$' $T/out)" = 8 ] || fail "8 OK lines expected: $(cat $T/out)"
jq -e '.schema == "qvet.kernels-check/1" and .passed == 8 and .failed == 0 and ([.cases[].result] | all(. == "pass"))' \
    $T/ok.json > /dev/null || fail "json: $(cat $T/ok.json)"
jq -e '[.cases[] | select(.op == "w4a8_g128")] | length == 3 and all(.acc_mismatch == 0 and .out_beyond_bound == 0)' \
    $T/ok.json > /dev/null || fail "json g128 figures"
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
    grep -q "7 passed, 1 failed" $T/out || fail "$1: other cases affected: $(cat $T/out)"
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
$Q kernels --check $FX --seed 3 2> $T/err; [ $? = 2 ] || fail "--check with --seed: exit"
$Q kernels --check 2> $T/err; [ $? = 2 ] || fail "--check without DIR: exit"
echo "cli_kcheck: ok"
