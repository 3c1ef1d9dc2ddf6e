#!/bin/bash
# The whole test suite: installs what is missing, builds with AddressSanitizer
# and UBSan in build-test/, runs every test, and ends with "N passed, N failed".
# Exit status: 0 when every test passed.
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

# Count meson's results from its log: the line CI reads.
python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {}
with open(sys.argv[1]) as log:
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
