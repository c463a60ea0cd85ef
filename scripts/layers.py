#!/usr/bin/env python3
"""scripts/layers.py - checks docs/architecture.md's "Who may call whom" on core/*.c.

A module may include (and so call) the headers of modules on rows below its own; within a
row only inside a family named together. Every core module must be placed on a row, so a
new file has to be put somewhere on purpose. Prints each violation as file:line.
"""
import fnmatch
import glob
import os
import re
import sys

# Keep in the same order as docs/architecture.md.
ROWS = [
    ["main", "policy_cli", "verify"],
    ["api", "api_*", "config_apply", "janitor", "plugin_load"],
    ["ops"],
    ["fanout"],
    ["dispatch", "delivery"],
    ["auth"],
    ["config_read", "config_schema", "config_yaml"],
    ["registry", "endpoint_schema", "transport_http", "transport_plugin"],
    ["plugin", "resolve"],
    ["policy", "policy_*", "worker", "sign", "url", "ssrf", "retry", "datadir", "flow",
     "epstats"],
    ["store", "store_*", "record"],
    ["clock", "id", "log", "jsontext", "json_scan", "ratelimit", "strmap", "header", "cli",
     "tls_text"],
    ["err"],
]
FAMILIES = [
    ["api", "api_*"],
    ["dispatch", "delivery"],
    ["registry", "endpoint_schema"],
    ["transport_http", "transport_plugin"],
    ["config_read", "config_schema", "config_yaml"],
    ["policy", "policy_*"],
    ["store", "store_*", "record"],
]
# Headers that are an interface rather than one module's .c: who implements them.
INTERFACES = {"config": "config_read", "transport": "transport_http"}


def place(name, table):
    for i, patterns in enumerate(table):
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            return i
    return None


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    modules = {os.path.basename(f)[:-2] for f in glob.glob("core/*.c")}
    bad = 0
    for path in sorted(glob.glob("core/*.c")):
        mod = os.path.basename(path)[:-2]
        row = place(mod, ROWS)
        if row is None:
            print(f"{path}: module '{mod}' is on no row of scripts/layers.py (and docs/architecture.md)")
            bad += 1
            continue
        for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
            m = re.match(r'#include "([a-z_-]+)\.h"', line)
            if not m:
                continue
            inc = m.group(1).replace("-t", "")
            target = INTERFACES.get(inc, inc)
            if target == mod or target not in modules:
                continue
            trow = place(target, ROWS)
            if trow is None or trow > row:
                continue
            fam = place(mod, FAMILIES)
            if fam is not None and fam == place(target, FAMILIES):
                continue
            print(f"{path}:{lineno}: {mod} (row {row + 1}) includes {inc}.h (row {trow + 1}): "
                  "a module calls only rows below its own (docs/architecture.md)")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
