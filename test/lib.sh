# Helpers for end-to-end tests (test/e2e_*.sh): run the real program as a user would and report
# PASS/FAIL lines in the format test/run.sh counts. Source it, call check/expect_fail, end with done_tests.
set -u
TRACELLM=${TRACELLM:-./tracellm}
SHARED=${TRACELLM_SHARED_DATA:-../shared/data}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tracellm-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
_failed=0
# check NAME COMMAND...: passes when the command exits 0
check() { local n=$1; shift; local out; if out=$("$@" 2>&1); then echo "PASS $n"; else echo "FAIL $n"; echo "$out" | tail -20 | sed 's/^/    /'; _failed=1; fi; }
# expect_fail NAME PATTERN COMMAND...: passes when the command exits non-zero AND its output matches PATTERN
expect_fail() { local n=$1 pat=$2; shift 2; local out rc; out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qE -- "$pat" <<<"$out"; then echo "PASS $n"; else echo "FAIL $n (rc=$rc, wanted /$pat/)"; echo "$out" | tail -20 | sed 's/^/    /'; _failed=1; fi; }
skip() { echo "SKIP $1: $2"; }
have_shared() { [ -f "$SHARED/README.md" ]; }
done_tests() { exit $_failed; }
