"""Evaluates the Argo CD health script with a Lua 5.1 interpreter (lupa), as Argo CD does.

Usage: health.py SCRIPT < objects.json   ->   [{"status": ..., "message": ...}, ...]
"""
import json
import sys

import lupa.lua51 as lua51


def main():
    script = open(sys.argv[1]).read()
    results = []
    for obj in json.load(sys.stdin):
        lua = lua51.LuaRuntime(unpack_returned_tuples=True)
        lua.globals().obj = lua.table_from(obj, recursive=True)
        hs = lua.execute(script)
        results.append({"status": hs["status"], "message": hs["message"]})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
