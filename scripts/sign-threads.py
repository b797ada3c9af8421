#!/usr/bin/env python3
"""Signatures per second on N threads: `tokenbench sign-bench --threads N` beside
`openssl speed -multi N`, alternating, medians of several rounds.

    TOKENBENCH=target/release/tokenbench python3 scripts/sign-threads.py [ROUNDS]

Environment: THREADS (default "1 2"), FIGURE_SECONDS per figure (default 2), BACKENDS (default
"aws-lc-rs,ring"). RS256 is set against `openssl speed rsa2048` (PKCS#1 v1.5 signatures,
as RS256), ES256 against ecdsap256, EdDSA against ed25519. Prints, per algorithm and thread
count, OpenSSL's signatures per second, each backend's, their ratio, and how each scales from
one thread (rate on N threads over N times the rate on one).
"""

import json
import os
import statistics
import subprocess
import sys

TOKENBENCH = os.environ.get("TOKENBENCH", "target/release/tokenbench")
THREADS = [int(n) for n in os.environ.get("THREADS", "1 2").split()]
SECONDS = os.environ.get("FIGURE_SECONDS", "2")
BACKENDS = os.environ.get("BACKENDS", "aws-lc-rs,ring")
# tokenbench algorithm -> (openssl speed name, its machine-readable line tag, field of sign/s)
OPENSSL = {"RS256": ("rsa2048", "+F2", 3), "ES256": ("ecdsap256", "+F4", 3), "EdDSA": ("ed25519", "+F6", 4)}


def tokenbench(threads):
    out = subprocess.run(
        [TOKENBENCH, "sign-bench", "--backend", BACKENDS, "--alg", ",".join(OPENSSL),
         "--threads", str(threads), "--seconds", SECONDS, "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return {(r["backend"], r["alg"]): r["signs_per_sec"] for r in json.loads(out)}


def openssl(threads):
    out = subprocess.run(
        ["openssl", "speed", "-seconds", SECONDS, "-mr", "-multi", str(threads)]
        + [name for name, _, _ in OPENSSL.values()],
        check=True, capture_output=True, text=True,
    ).stdout
    rates = {}
    for alg, (_, tag, field) in OPENSSL.items():
        line = next(l for l in out.splitlines() if l.startswith(tag + ":"))
        rates[alg] = float(line.split(":")[field])
    return rates


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    samples = {}  # (who, alg, threads) -> [signs/s]
    for r in range(rounds):
        for threads in THREADS:
            for (backend, alg), rate in tokenbench(threads).items():
                samples.setdefault((backend, alg, threads), []).append(rate)
            for alg, rate in openssl(threads).items():
                samples.setdefault(("openssl", alg, threads), []).append(rate)
            print(f"round {r + 1}/{rounds}, {threads} thread(s) done", file=sys.stderr, flush=True)
    median = {key: statistics.median(values) for key, values in samples.items()}
    backends = BACKENDS.split(",")
    print(f"signatures per second, medians of {rounds} alternating rounds ({SECONDS} s per figure)")
    print(f"{'alg':6} {'threads':>7} {'openssl':>10} " + " ".join(
        f"{b:>10} {'vs openssl':>10}" for b in backends))
    for alg in OPENSSL:
        for threads in THREADS:
            row = f"{alg:6} {threads:>7} {median[('openssl', alg, threads)]:>10.0f} "
            for b in backends:
                rate = median.get((b, alg, threads))
                row += f"{rate:>10.0f} {rate / median[('openssl', alg, threads)]:>9.2f}× " if rate else f"{'-':>10} {'-':>10} "
            print(row)
    print("\nscaling: rate on N threads over N × the rate on one")
    for who in ["openssl"] + backends:
        for alg in OPENSSL:
            one = median.get((who, alg, 1))
            if not one:
                continue
            parts = [f"{n} threads {median[(who, alg, n)] / (n * one):.2f}" for n in THREADS if n > 1 and (who, alg, n) in median]
            print(f"  {who:10} {alg:6} " + ", ".join(parts))


if __name__ == "__main__":
    main()
