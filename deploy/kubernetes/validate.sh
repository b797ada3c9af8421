#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment in this folder (no cluster, no network but PyPI):
#
# 1. every manifest (*.yaml) against the Kubernetes API's JSON schemas in strict mode (an
#    unknown or misspelled field is an error), for the oldest Kubernetes these manifests
#    support (1.31: podFailurePolicy is GA there) and the newest that kubernetes-validate
#    bundles. The schemas come inside the PyPI package kubernetes-validate, installed here
#    (pinned) if missing;
# 2. what the schemas cannot see: the shard Job's N agrees in completions, parallelism and
#    --shards; every $(VAR) in a container's args is defined for it (Kubernetes leaves an
#    undefined one as literal text); resource quantities parse. (The scenario in the ConfigMap
#    is checked by tokenbench's own parser and sharding rule in crates/cli/tests/deploy.rs.)
# 3. every path the Dockerfile COPYs from the build context (the repository root) exists.
#
# Usage: deploy/kubernetes/validate.sh [DIR]   (DIR: the manifests' folder, default this one)
# Exits non-zero on the first failing check. KUBE_VERSIONS overrides the versions checked.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="$(cd "${1:-$here}" && pwd)"
versions="${KUBE_VERSIONS:-1.31.0 1.37.0}"
pinned=1.37.0

installed="$(python3 -c 'from importlib.metadata import version; print(version("kubernetes-validate"))' 2>/dev/null || true)"
if [ "$installed" != "$pinned" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "kubernetes-validate==$pinned"
fi

shopt -s nullglob
manifests=("$dir"/*.yaml)
if [ ${#manifests[@]} -eq 0 ]; then
    echo "validate.sh: no *.yaml manifests in $dir" >&2
    exit 1
fi

cd "$dir"
for version in $versions; do
    echo "validate.sh: Kubernetes $version, strict schemas (kubernetes-validate $pinned):"
    # kubernetes-validate only warns (exit 0) on a kind it has no schema for, e.g. a misspelled
    # `kind:`; any WARN or ERROR line fails here.
    out="$(python3 -m kubernetes_validate --strict --kubernetes-version "$version" \
        "${manifests[@]##*/}" 2>&1)" || { echo "$out"; exit 1; }
    echo "$out"
    if grep -qE '^(WARN|ERROR)' <<<"$out"; then
        exit 1
    fi
done

echo "validate.sh: consistency of the manifests:"
python3 - "${manifests[@]}" <<'EOF'
import re
import sys

import yaml

# Quantities are plain strings to the schemas; the API server parses them.
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
# $(VAR) in command/args (not the $$(VAR) escape).
REFERENCE = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def quantities(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("requests", "limits") and isinstance(value, dict):
                yield from ((f"{where}.{key}.{k}", v) for k, v in value.items())
            elif key == "sizeLimit":
                yield f"{where}.{key}", value
            else:
                yield from quantities(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from quantities(item, f"{where}[{i}]")


def pod_spec(doc):
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] == "Job":
        return doc["spec"]["template"]["spec"]
    return None


def check_pods(doc):
    spec = pod_spec(doc)
    if spec is None:
        return
    indexed = doc["kind"] == "Job" and doc["spec"].get("completionMode") == "Indexed"
    for c in spec.get("containers", []):
        defined = {e["name"] for e in c.get("env", [])}
        if indexed:
            defined.add("JOB_COMPLETION_INDEX")  # added to every container by the Job controller
        for arg in c.get("command", []) + c.get("args", []):
            for var in REFERENCE.findall(str(arg)):
                if var not in defined:
                    yield f"$({var}) in {arg!r} is not defined in the container's env"
        args = [str(a) for a in c.get("args", [])]
        if indexed and args[:1] == ["run"]:
            completions, parallelism = doc["spec"].get("completions"), doc["spec"].get("parallelism")
            shards = args[args.index("--shards") + 1] if "--shards" in args[:-1] else None
            if not (str(completions) == str(parallelism) == shards):
                yield (
                    f"completions ({completions}), parallelism ({parallelism}) and --shards "
                    f"({shards}) must be the same N"
                )


failed = False
for path in sys.argv[1:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        what = f"{path.rsplit('/', 1)[-1]}: {doc['kind']} {doc['metadata']['name']}"
        problems = [
            f"{where}: {value!r} is not a Kubernetes quantity"
            for where, value in quantities(doc.get("spec", {}), "spec")
            if not QUANTITY.match(str(value))
        ]
        problems += list(check_pods(doc))
        print(f"  {what}: {'FAILED' if problems else 'ok'}")
        for problem in problems:
            print(f"validate.sh: {what}: {problem}", file=sys.stderr)
        failed |= bool(problems)
sys.exit(1 if failed else 0)
EOF

echo "validate.sh: Dockerfile COPY sources (build context $repo):"
dockerfile="$dir/Dockerfile"
[ -f "$dockerfile" ] || dockerfile="$here/Dockerfile"
missing=0
# COPY lines without --from (those copy from another stage): every source but the destination.
while read -r -a words; do
    sources=("${words[@]:1:${#words[@]}-2}")
    for src in "${sources[@]}"; do
        case "$src" in --*) continue ;; esac
        if [ -e "$repo/$src" ]; then
            echo "  $src: exists"
        else
            echo "validate.sh: Dockerfile COPYs $src, which is not in $repo" >&2
            missing=1
        fi
    done
done < <(grep -E '^COPY[[:space:]]' "$dockerfile" | grep -v -- '--from=')
[ "$missing" -eq 0 ]
echo "validate.sh: all checks passed"
