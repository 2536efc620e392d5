# Shared by CLI test scripts (sourced, not a test: tests/cli_*.sh are the tests): a scratch
# folder $T removed at exit, the ok/bad tally in $fails, and
#   expect NAME WANT_RC STDERR_SUBSTRING_OR_- -- qvet args...
# which runs $QVET with the args and checks its exit code and (unless -) a stderr substring.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

expect() {
  local name=$1 rc=$2 err=$3; shift 4
  "$QVET" "$@" >"$T/out" 2>"$T/err" </dev/null
  local got=$?
  if [ "$got" != "$rc" ]; then bad "$name: exit $got, want $rc ($(head -c 300 "$T/err"))"; return; fi
  if [ "$err" != "-" ] && ! grep -qF -- "$err" "$T/err"; then bad "$name: stderr '$(head -c 300 "$T/err")' lacks '$err'"; return; fi
  ok "$name"
}
