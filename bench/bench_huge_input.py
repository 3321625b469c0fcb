"""`enrich serve`: how long a small request waits behind a 9 MB one (issue #23, row 3).

    python bench/bench_huge_input.py            # ~1 minute; prints a Markdown report

Starts `enrich serve` (its own endpoint store in a temporary ENRICH_HOME, the SPLADE
endpoint loaded first), then, `--rounds` times: sends one request whose input is a single
9 MB text, waits until its body is on the wire, and sends a small request (the seed text)
on another connection. Reports the small request's latency alone and behind the huge one,
and the huge one's own latency. Plain urllib clients on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

SEED = "The sky above the port was the color of television tuned to a dead channel."
ROUTE = "/_inference/sparse_embedding/my-elser-model"


STATUSES: list[int] = []


def post(url: str, text: str) -> float:
    """Seconds to the answer; its status goes to STATUSES (a 408 is an answer too)."""
    body = json.dumps({"input": text}).encode()
    request = urllib.request.Request(url + ROUTE, body, {"Content-Type": "application/json"}, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            STATUSES.append(response.status)
    except urllib.error.HTTPError as error:
        STATUSES.append(error.code)
    return time.perf_counter() - started


def wait_ready(url: str, process: subprocess.Popen) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit("enrich serve exited")
        try:
            post(url, SEED)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("enrich serve did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=9.0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_serve import free_port

    words = SEED.replace(".", "").split()
    huge = (" ".join(words) + " ") * int(args.megabytes * 1_000_000 / (len(" ".join(words)) + 1))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ENRICH_HOME": home, "OMP_WAIT_POLICY": "PASSIVE"}
        process = subprocess.Popen([sys.executable, "-m", "inference_enrich.pipelines.cli", "serve",
                                    "--port", str(port), "--no-access-log"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(url, process)
            STATUSES.clear()
            alone = [post(url, SEED) for _ in range(args.rounds)]
            behind, big = [], []
            for _ in range(args.rounds):
                done: list[float] = []
                thread = threading.Thread(target=lambda: done.append(post(url, huge)))
                thread.start()
                time.sleep(0.2)  # the huge body is sent and being read or parsed by now
                behind.append(post(url, SEED))
                thread.join()
                big.extend(done)
        finally:
            process.terminate()
            process.wait(60)
    load = os.getloadavg()[0]
    print(f"huge input: {len(huge) / 1e6:.1f} MB of text, {args.rounds} rounds, load average {load:.1f}\n")
    print("| request | median s | max s |\n| --- | --- | --- |")
    for name, times in (("small, alone", alone), ("small, sent 0.2 s after the huge one", behind),
                        ("the huge one", big)):
        print(f"| {name} | {statistics.median(times):.3f} | {max(times):.3f} |")
    print(f"\nstatuses: {dict(sorted((code, STATUSES.count(code)) for code in set(STATUSES)))}")


if __name__ == "__main__":
    main()
