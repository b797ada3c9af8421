#!/usr/bin/env python3
"""Valid requests' latency at `tokenbench mock` while hostile clients hold its connections.

One `tokenbench mock` on loopback; rounds alternate between quiet (the valid client alone)
and under attack (IDLE connections that send nothing, SLOW connections that send a request's
headers with `Content-Length: 100` and then trickle a byte a second, each reopened as soon as
the mock closes it, from a separate process). In each round the valid client sends REQUESTS
backend requests with a token over one keep-alive connection, then REQUESTS more each on a new
connection, one at a time, and the script prints p50 and p99 of each with the medians over
the rounds and the ratio attack / quiet.

    TOKENBENCH=target/release/tokenbench python3 scripts/hostile-clients.py [ROUNDS]

Environment: IDLE (default 5000), SLOW (1000), REQUESTS (2000). The process raises its own
open-file limit to the hard limit; the mock holds at most half of its own limit in connections.
"""

import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

TOKENBENCH = os.environ.get("TOKENBENCH", "target/release/tokenbench")
IDLE = int(os.environ.get("IDLE", "5000"))
SLOW = int(os.environ.get("SLOW", "1000"))
REQUESTS = int(os.environ.get("REQUESTS", "2000"))
SECRET = "hostile-clients-secret"


def raise_fd_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def hold(host, port, payload, trickle, stop):
    """Keeps one hostile connection open, reopening it whenever the server closes it."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
            if payload:
                writer.write(payload)
            while not stop.is_set():
                if trickle:
                    writer.write(b"a")
                    await writer.drain()
                try:
                    # Returns at once when the server closes the connection.
                    data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                    if not data:
                        break
                except asyncio.TimeoutError:
                    pass
            writer.close()
        except OSError:
            await asyncio.sleep(0.1)


def attack(host, port, ready, done):
    raise_fd_limit()

    async def main():
        stop = asyncio.Event()
        slow_head = (
            f"POST /tokenbench/oauth2/v2.0/token HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
        ).encode()
        tasks = [asyncio.create_task(hold(host, port, b"", False, stop)) for _ in range(IDLE)]
        tasks += [
            asyncio.create_task(hold(host, port, slow_head, True, stop)) for _ in range(SLOW)
        ]
        await asyncio.sleep(3)  # all connected and holding
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.2)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


async def measure(host, port, token):
    request = (
        f"GET /api/orders HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()

    async def exchange(reader, writer):
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"a valid request was answered {head.splitlines()[0]!r}")
        return time.perf_counter() - start

    reader, writer = await asyncio.open_connection(host, port)
    kept = [await exchange(reader, writer) for _ in range(REQUESTS)]
    writer.close()
    fresh = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        await exchange(reader, writer)
        fresh.append(time.perf_counter() - start)
        writer.close()
    return kept, fresh


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    raise_fd_limit()
    mock = subprocess.Popen(
        [TOKENBENCH, "mock", "--client-secret", SECRET],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        urls = json.loads(mock.stdout.readline())
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": urls["client_id"],
                "client_secret": SECRET,
                "scope": urls["scope"],
            }
        ).encode()
        with urllib.request.urlopen(urls["token_url"], form) as answer:
            token = json.load(answer)["access_token"]
        parsed = urllib.parse.urlparse(urls["backend_url"])
        host, port = parsed.hostname, parsed.port
        results = {"quiet": [], "attack": []}
        for _ in range(rounds):
            for phase in ("quiet", "attack"):
                attacker = None
                if phase == "attack":
                    ready, done = multiprocessing.Event(), multiprocessing.Event()
                    attacker = multiprocessing.Process(
                        target=attack, args=(host, port, ready, done)
                    )
                    attacker.start()
                    if not ready.wait(timeout=60):
                        attacker.kill()
                        raise SystemExit("the attacking process did not get its connections up")
                kept, fresh = asyncio.run(measure(host, port, token))
                if attacker:
                    done.set()
                    attacker.join()
                results[phase].append(
                    [percentile(s, p) * 1e3 for s in (kept, fresh) for p in (50, 99)]
                )
                print(
                    f"{phase:6} keep-alive p50 {results[phase][-1][0]:.3f} ms p99 "
                    f"{results[phase][-1][1]:.3f} ms | new connection p50 "
                    f"{results[phase][-1][2]:.3f} ms p99 {results[phase][-1][3]:.3f} ms",
                    flush=True,
                )
        with urllib.request.urlopen(urls["admin_url"] + "/stats") as answer:
            stats = json.load(answer)
        names = ["keep-alive p50", "keep-alive p99", "new connection p50", "new connection p99"]
        print(
            f"\nmedians of {rounds} alternating rounds, {REQUESTS} valid requests each way, "
            f"attack = {IDLE} idle + {SLOW} slow-body connections:"
        )
        for i, name in enumerate(names):
            quiet = statistics.median(r[i] for r in results["quiet"])
            under = statistics.median(r[i] for r in results["attack"])
            print(f"  {name:20} quiet {quiet:.3f} ms  attack {under:.3f} ms  ratio {under / quiet:.2f}")
        print(
            f"mock: slow_bodies_cut {stats.get('slow_bodies_cut')}, "
            f"connection_cap_waits {stats.get('connection_cap_waits')}"
        )
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
