"""Renders and lints the chart with real Helm (helm-python-sdk), for the Rust chart tests.

Usage: helm.py render CHART VALUES_JSON RELEASE NAMESPACE  -> {"templates": {path: manifest}}
       helm.py lint CHART VALUES_JSON                      -> the lint report
       helm.py lifecycle CHART VALUES_JSON CURRENT_CHART RELEASE NAMESPACE KUBECONFIG
           -> {"step": "installed"}, {"step": "upgraded"}, {"step": "uninstalled"}, a line each,
              each after a line read from stdin but the first
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
        elif cmd == "lifecycle":
            # Install the chart at CHART, upgrade to the one at sys.argv[4], uninstall; after each step
            # print it and wait for a line on stdin (the caller inspects the cluster in between). The
            # release is kept in memory: this test API server reads JSON only, and Helm writes its
            # release Secrets as protobuf.
            current, release, namespace, kubeconfig = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
            helm = helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace, storage_driver="memory")
            for step in ("installed", "upgraded", "uninstalled"):
                if step == "installed":
                    helm.install(chart, release, values, namespace=namespace)
                elif step == "upgraded":
                    helm.upgrade(current, release, values, namespace=namespace)
                else:
                    helm.uninstall(release)
                print(json.dumps({"step": step}), flush=True)
                sys.stdin.readline()
        elif cmd == "lint":
            print(json.dumps(helm_python.lint(chart, values, strict=True)))
        else:
            raise SystemExit(f"unknown command {cmd}")
    except helm_python.HelmError as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        sys.exit(3)


if __name__ == "__main__":
    main()
