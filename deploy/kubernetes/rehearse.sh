#!/usr/bin/env bash
# A dress rehearsal of a Kubernetes run on this machine, before you apply it to a cluster:
#
# 1. the ConfigMap's scenario (10-scenario-configmap.yaml) runs for 2 s, unsharded, against
#    `tokenbench mock` on 127.0.0.1 — tokenbench has no parse-only command, and a scenario's
#    keys (token_url, client_id, scope, key, cert, backend url, …) are checked when a run
#    starts;
# 2. the shard Job (30-shard-job.yaml) runs as N local processes, each with the Job's own args
#    expanded the way Kubernetes expands them ($(RUN_ID), $(TOKENBENCH_START_AT) and
#    $(JOB_COMPLETION_INDEX), index 0..N-1), the container's mount paths mapped to local
#    folders, all starting at one --start-at instant;
# 3. the merge Job (40-merge-job.yaml) runs with its args over their results, and the merged
#    report must hold N shards' requests, all answered.
#
# Only the addresses and credentials are swapped: [idp] token_url and scope and [backend] url
# point at the loopback mock, [idp] key and cert at a freshly generated pair registered with it
# under the scenario's client_id; the runs are cut to 2 s (--duration 2s appended). Every other
# setting runs as written. Nothing but 127.0.0.1 is contacted. It needs the tokenbench binary
# (TOKENBENCH=…; default target/release/tokenbench, built if missing) and PyYAML (installed
# with kubernetes-validate by validate.sh).
#
# Usage: deploy/kubernetes/rehearse.sh [MANIFESTS-DIR]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="$(cd "${1:-$here}" && pwd)"
tokenbench="${TOKENBENCH:-$repo/target/release/tokenbench}"
if [ ! -x "$tokenbench" ]; then
    (cd "$repo" && cargo build --release --quiet -p tokenbench)
fi

exec python3 - "$tokenbench" "$dir" <<'EOF'
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

import yaml

tokenbench, manifests = sys.argv[1:]
DURATION = "2s"


def fail(message):
    sys.exit(f"rehearse.sh: {message}")


def run(what, argv):
    """Runs tokenbench; its own error message (stderr) says what is wrong."""
    code = subprocess.run(argv).returncode
    if code:
        fail(f"{what} failed (exit {code}); see tokenbench's message above")


def load(name):
    with open(os.path.join(manifests, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def rewrite(text, want):
    """`text` (TOML) with the keys of `want` ({section: {key: value}}) replaced line by line,
    so that line numbers in tokenbench's errors are those of the ConfigMap's scenario."""
    section, lines = None, []
    for line in text.splitlines(keepends=True):
        header = re.match(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$", line)
        if header:
            section = header.group(1)
        key = re.match(r"^(\s*)([A-Za-z0-9_]+)(\s*=\s*)", line)
        if key and section in want and key.group(2) in want[section]:
            value = json.dumps(want[section][key.group(2)])
            line = f"{key.group(1)}{key.group(2)}{key.group(3)}{value}\n"
        lines.append(line)
    out = "".join(lines)
    parsed = tomllib.loads(out)
    for section, keys in want.items():
        for key, value in keys.items():
            if parsed.get(section, {}).get(key) != value:
                fail(f"could not point [{section}] {key} at the local mock")
    return out


def requests_of(report_dir):
    with open(os.path.join(report_dir, "report.json")) as f:
        return json.load(f)["requests"]


def answered(what, requests):
    print(f"rehearse.sh: {what}: requests {json.dumps(requests)}")
    bad = {k: requests[k] for k in ("unauthorized", "forbidden", "errors") if requests.get(k)}
    if not requests.get("ok") or bad:
        fail(f"{what}: the requests did not get through: {bad or 'none answered 200'}")


def pod(job):
    spec = job["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def local_paths(spec, container, dirs):
    """mountPath -> local folder, by the kind of each mounted volume."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    paths = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        kind = next(k for k in ("configMap", "secret", "persistentVolumeClaim", "emptyDir") if k in volume)
        paths[mount["mountPath"]] = dirs[kind]
    return paths


def command(container, env, paths):
    """The container's args as Kubernetes expands $(VAR), then with mount paths made local."""
    args = []
    for arg in container.get("args", []):
        arg = re.sub(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), str(arg))
        for mount, local in sorted(paths.items(), key=lambda p: -len(p[0])):
            if arg == mount or arg.startswith(mount + "/"):
                arg = local + arg[len(mount):]
                break
        args.append(arg)
    return [tokenbench] + args


def config_env(container, run_config):
    env = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref is None:
            env[e["name"]] = e["value"]
        elif ref["name"] == "tokenbench-run":
            env[e["name"]] = run_config[ref["key"]]
        else:
            fail(f"env {e['name']} comes from ConfigMap {ref['name']}, which this rehearsal does not know")
    return env


work = tempfile.mkdtemp(prefix="tokenbench-rehearsal-")
mock = None
try:
    configmap = next(d for d in load("10-scenario-configmap.yaml") if d["kind"] == "ConfigMap")
    scenario = configmap["data"]["scenario.toml"]
    client_id = tomllib.loads(scenario)["idp"]["client_id"]

    dirs = {k: os.path.join(work, d) for k, d in [
        ("configMap", "etc/scenario"), ("secret", "etc/client"),
        ("persistentVolumeClaim", "results"), ("emptyDir", "tmp")]}
    for d in dirs.values():
        os.makedirs(d)
    subprocess.run([tokenbench, "keygen", "--out", os.path.join(work, "keygen")], check=True, stdout=subprocess.DEVNULL)
    shutil.copy(os.path.join(work, "keygen", "key.pem"), os.path.join(dirs["secret"], "tls.key"))
    shutil.copy(os.path.join(work, "keygen", "cert.pem"), os.path.join(dirs["secret"], "tls.crt"))

    mock = subprocess.Popen(
        [tokenbench, "mock", "--addr", "127.0.0.1:0", "--client-id", client_id,
         "--client-cert", os.path.join(dirs["secret"], "tls.crt")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    endpoints = json.loads(mock.stdout.readline())
    local_scenario = os.path.join(dirs["configMap"], "scenario.toml")
    with open(local_scenario, "w") as f:
        f.write(rewrite(scenario, {
            "idp": {
                "token_url": endpoints["token_url"],
                "scope": endpoints["scope"],
                "key": os.path.join(dirs["secret"], "tls.key"),
                "cert": os.path.join(dirs["secret"], "tls.crt"),
            },
            "backend": {"url": endpoints["backend_url"]},
        }))

    # 1. The scenario alone.
    print(f"rehearse.sh: 1. the ConfigMap's scenario, unsharded, {DURATION} against tokenbench mock on 127.0.0.1")
    unsharded = os.path.join(work, "unsharded")
    run("the unsharded run", [tokenbench, "run", local_scenario, "--duration", DURATION, "--out", unsharded, "--quiet"])
    answered("unsharded", requests_of(unsharded))

    # 2. The shard Job's pods, as local processes.
    shard_job = next(d for d in load("30-shard-job.yaml") if d["kind"] == "Job")
    n = shard_job["spec"]["completions"]
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=5)
    run_config = {"RUN_ID": "rehearsal", "TOKENBENCH_START_AT": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    spec, container = pod(shard_job)
    paths = local_paths(spec, container, dirs)
    print(f"rehearse.sh: 2. the shard Job: {n} processes, --start-at {run_config['TOKENBENCH_START_AT']}")
    shards = []
    for index in range(n):
        env = config_env(container, run_config) | {"JOB_COMPLETION_INDEX": str(index)}
        argv = command(container, env, paths) + ["--duration", DURATION]
        if index == 0:
            print("rehearse.sh:   shard 0: " + " ".join(argv[1:]).replace(work, "<work>"))
        shards.append(subprocess.Popen(argv, env=os.environ | env))
    codes = [p.wait() for p in shards]
    finished = time.time()
    if any(codes):
        fail(f"shard exit codes {codes}; see tokenbench's messages above")
    if finished < start.timestamp():
        fail("the shards finished before --start-at: they did not wait for it")
    total = 0
    for index in range(n):
        folder = os.path.join(dirs["persistentVolumeClaim"], run_config["RUN_ID"], f"shard-{index}")
        for name in ("report.json", "report.md", "report.html", "latency.hlog", "tally.json"):
            if not os.path.isfile(os.path.join(folder, name)):
                fail(f"shard {index} did not write {name} into results/rehearsal/shard-{index}")
        requests = requests_of(folder)
        answered(f"shard {index}", requests)
        total += requests["sent"]
        with open(os.path.join(folder, "report.json")) as f:
            header = json.load(f)["shard"]
        if (header["index"], header["count"]) != (index, n) or header["late_ms"] != 0:
            fail(f"shard {index}'s report says shard {header['index']}/{header['count']}, {header['late_ms']} ms late")

    # 3. The merge Job over their results.
    merge_job = next(d for d in load("40-merge-job.yaml") if d["kind"] == "Job")
    spec, container = pod(merge_job)
    argv = command(container, config_env(container, run_config), local_paths(spec, container, dirs))
    print("rehearse.sh: 3. the merge Job: " + " ".join(argv[1:]).replace(work, "<work>"))
    run("the merge", argv + ["--quiet"])
    merged = os.path.join(dirs["persistentVolumeClaim"], run_config["RUN_ID"], "merged")
    requests = requests_of(merged)
    answered("merged", requests)
    with open(os.path.join(merged, "report.json")) as f:
        info = json.load(f)["merged"]
    if info["shards"] != n or info["interrupted_shards"] or info["late_shards"]:
        fail(f"the merged report says: {json.dumps(info)}")
    if requests["sent"] != total:
        fail(f"the merged report sent {requests['sent']} requests, the shards {total}")
    print(f"rehearse.sh: passed: the scenario runs, {n} shards started together and merged")
finally:
    if mock is not None:
        mock.terminate()
        mock.wait()
    shutil.rmtree(work, ignore_errors=True)
EOF
