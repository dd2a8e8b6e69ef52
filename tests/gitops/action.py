"""Runs the Argo CD resource action script with a Lua 5.1 interpreter (lupa), as Argo CD does.

Usage: action.py SCRIPT TIME < cases.json   (cases: [{"action": NAME, "obj": OBJECT}, ...])
  -> [{"annotations": {...}} | {"error": TEXT} | {"actions": {NAME: {"disabled": BOOL}}}, ...]
TIME (YYYY-MM-DDTHH:MM:SS, UTC) is what os.date answers, so the values can be compared.
"""
import json
import sys

import lupa.lua51 as lua51


def to_py(v):
    if lua51.lua_type(v) == "table":
        return {k: to_py(x) for k, x in v.items()}
    return v


def main():
    script, now = open(sys.argv[1]).read(), sys.argv[2]
    results = []
    for case in json.load(sys.stdin):
        lua = lua51.LuaRuntime(unpack_returned_tuples=True)
        lua.execute("os.date = function(fmt) return %s end" % json.dumps(now))
        lua.globals().obj = lua.table_from(case["obj"], recursive=True)
        chunk = 'local action = %s\n' % json.dumps(case["action"]) + script
        try:
            out = lua.execute(chunk)
        except lua51.LuaError as e:
            # lupa appends Lua's traceback; Argo CD shows the message.
            results.append({"error": str(e).split("\nstack traceback:")[0]})
            continue
        if case["action"] == "discover":
            results.append({"actions": to_py(out)})
        else:
            results.append({"annotations": to_py(out["metadata"]["annotations"])})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
