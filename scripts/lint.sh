#!/usr/bin/env bash
# Style checks that a compiler does not make: banned functions in our C sources.
# sprintf/strcpy/strcat/gets overflow silently; atoi/atol cannot report bad input.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atoll)[[:space:]]*\('
if grep -rnE "$banned" core include plugins bench tests/unit tests/tools --include='*.c' --include='*.h' 2>/dev/null; then
	echo "lint: banned function used (see STYLE.md; use snprintf, memcpy, strtol)" >&2
	exit 1
fi
echo "lint: 1 passed, 0 failed"
