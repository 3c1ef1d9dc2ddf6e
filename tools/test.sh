#!/bin/bash
# The whole test suite: installs what is missing, builds with AddressSanitizer
# and UBSan in build-test/ and runs every test there, then builds with
# ThreadSanitizer in build-tsan/ and runs there the mount tests that work the
# daemons' threads (meson's suite "tsan": import_mount, mount_io, stress).
# Ends with "N passed, N failed" over both runs.
# Exit status: 0 when every test of both runs passed.
#
# Arguments go to the first run's `meson test` (a test or a suite to run). The
# ThreadSanitizer run then happens only with IMPEX_TSAN=1, with the same
# arguments; IMPEX_TSAN=0 leaves it out in any case.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$IMPEX_ROOT"

impex_install_packages "${IMPEX_PACKAGES[@]}"
BUILD=${IMPEX_TEST_BUILD:-build-test}
if ! impex_build "$BUILD" -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false; then
	echo "error: the build failed" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# The security suite's attacks run as this unprivileged user.
if ! id impex-attacker >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin impex-attacker
fi

status=0
meson test -C "$BUILD" --print-errorlogs --num-processes "$(nproc)" "$@" || status=$?
logs=("$BUILD/meson-logs/testlog.json")
broken=0 # runs that could not be made: each counts as one failed test

TSAN=${IMPEX_TSAN:-$([ $# -eq 0 ] && echo 1 || echo 0)}
if [ "$TSAN" = 1 ]; then
	TSAN_BUILD=${IMPEX_TSAN_BUILD:-build-tsan}
	trap impex_tsan_done EXIT
	if ! impex_build "$TSAN_BUILD" -Dbuildtype=debug -Db_sanitize=thread -Dtests=true; then
		echo "error: the ThreadSanitizer build failed" >&2
		broken=$((broken + 1))
	elif ! impex_tsan_ready "$TSAN_BUILD/tools/impex"; then
		broken=$((broken + 1))
	else
		# A report fails the test that saw it (the daemon exits 66 and says
		# "WARNING: ThreadSanitizer"); the run goes on to the end.
		export TSAN_OPTIONS=${TSAN_OPTIONS:-second_deadlock_stack=1}
		started=$SECONDS
		"${IMPEX_TSAN_RUN[@]}" meson test -C "$TSAN_BUILD" --print-errorlogs \
			--num-processes "$(nproc)" --suite tsan "$@" || status=$?
		echo "ThreadSanitizer run: $((SECONDS - started)) s"
		logs+=("$TSAN_BUILD/meson-logs/testlog.json")
	fi
	impex_tsan_done
fi
[ "$broken" -eq 0 ] || status=1

# Count meson's results from the logs of both runs: the line CI reads.
python3 - "$broken" "${logs[@]}" <<'PY'
import json, sys
counts = {"FAIL": int(sys.argv[1])}
for path in sys.argv[2:]:
    with open(path) as log:
        for line in log:
            result = json.loads(line)["result"]
            counts[result] = counts.get(result, 0) + 1
passed = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
skipped = counts.get("SKIP", 0)
failed = sum(counts.values()) - passed - skipped
if skipped:
    print("%d skipped" % skipped)
print("%d passed, %d failed" % (passed, failed))
PY
exit $status
