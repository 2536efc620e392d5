#!/bin/sh
# Regenerates evals/thresholds_default.c from evals/thresholds.default.json.
set -e
cd "$(dirname "$0")/.."
python3 - <<'PY'
s=open('evals/thresholds.default.json').read()
esc=s.replace('\\','\\\\').replace('"','\\"').split('\n')
body='\n'.join('    "%s\\n"'%l for l in esc[:-1])
open('evals/thresholds_default.c','w').write('''/* The shipped default thresholds (evals/thresholds.default.json, embedded so the binary needs
 * no source tree; tests/cli_validate.sh checks that the two are identical). Regenerate with:
 * tools/embed_thresholds.sh */
const char qv_thresholds_default_json[] =
%s;
''' % body)
PY
