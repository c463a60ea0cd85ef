#!/usr/bin/env bash
# Style checks that a compiler does not make:
# 1. banned functions in our C sources: sprintf/strcpy/strcat/gets overflow silently;
#    atoi/atol cannot report bad input;
# 2. the store owns its schema: in C sources LMDB (mdb_, MDB_, lmdb.h) appears only in the
#    store's own files (core/store*.c, core/store*.h); everyone else uses the typed functions
#    of store.h (prose and the bench's profile rules may name LMDB's functions);
# 3. the call rules of docs/architecture.md: a core module includes only modules on the rows
#    below its own (scripts/layers.py holds the rows).
set -euo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
# Only directories that exist: grep exits 2 for a missing one even when it found matches,
# which would make a check pass with a violation printed.
existing() { for d in "$@"; do if [ -d "$d" ]; then echo "$d"; fi; done; }
mapfile -t c_dirs < <(existing core include plugins bench tests/unit tests/tools)
mapfile -t lmdb_dirs < <(existing core include plugins bench)

banned='\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atoll)[[:space:]]*\('
if grep -rnE "$banned" "${c_dirs[@]}" --include='*.c' --include='*.h'; then
	echo "lint: banned function used (see STYLE.md; use snprintf, memcpy, strtol)" >&2
	failed=$((failed + 1))
else
	passed=$((passed + 1))
fi

lmdb='mdb_|MDB_|lmdb\.h'
if grep -rnIE "$lmdb" "${lmdb_dirs[@]}" --include='*.c' --include='*.h' | grep -vE '^core/store[^/]*\.[ch]:'; then
	echo "lint: LMDB used outside the store (only core/store*.c and core/store*.h may; use the typed functions of store.h)" >&2
	failed=$((failed + 1))
else
	passed=$((passed + 1))
fi

if python3 scripts/layers.py; then
	passed=$((passed + 1))
else
	echo "lint: a module calls up the layers of docs/architecture.md (scripts/layers.py)" >&2
	failed=$((failed + 1))
fi

echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
