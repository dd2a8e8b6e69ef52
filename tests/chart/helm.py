"""Renders and lints the chart with real Helm (helm-python-sdk), for the Rust chart tests.

Usage: helm.py render CHART VALUES_JSON RELEASE NAMESPACE  -> {"templates": {path: manifest}}
       helm.py lint CHART VALUES_JSON                      -> the lint report
Failures print {"error": KIND, "message": TEXT} and exit 3.
"""
import json
import sys

import helm_python


def main():
    cmd, chart, values = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        if cmd == "render":
            with helm_python.Chart.load(chart) as c:
                out = c.render(values, name=sys.argv[4], namespace=sys.argv[5], is_install=True)
            print(json.dumps({"templates": out}))
        elif cmd == "lint":
            print(json.dumps(helm_python.lint(chart, values, strict=True)))
        else:
            raise SystemExit(f"unknown command {cmd}")
    except helm_python.HelmError as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        sys.exit(3)


if __name__ == "__main__":
    main()
