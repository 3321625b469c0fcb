"""Scale-out on one machine: the same corpus enriched by 1 and by 2 Beam worker processes.

    .venv/bin/python bench/bench_scaleout.py [--docs 2000] [--workers 1,2]

Each run is `enrich run` with `--direct_running_mode=multi_processing` (so even the 1-worker
run pays the same process hand-off) and torch threads split evenly over the cores
(`--num-threads cores/workers`). Peak RSS per worker is each SDK worker process's high-water
mark (VmHWM), sampled from /proc while the job runs; docs/s counts the whole `enrich run`,
start-up included. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import build_corpus  # noqa: E402

SHARDS = 8  # several files so that every worker gets some


def write_shards(count: int, directory: Path) -> int:
    documents = build_corpus(count)
    for shard in range(SHARDS):
        with (directory / f"shard-{shard}.jsonl").open("w", encoding="utf-8") as stream:
            for document in documents[shard::SHARDS]:
                stream.write(json.dumps(document) + "\n")
    return sum(len(d["text"].split()) for d in documents)


def _children(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree - {root}


def _worker_peaks(root: int, peaks: dict[int, int]) -> None:
    for pid in _children(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"python" not in argv[0] or not any(b"sdk_worker_main" in arg for arg in argv):
                continue  # not an SDK worker (e.g. the shell that starts one)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
        except OSError:
            continue


def run_with_workers(workers: int, inputs: Path, output: Path) -> dict:
    threads = max(1, (os.cpu_count() or 2) // workers)
    command = [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--quiet",
               "--input", str(inputs / "shard-*.jsonl"), "--output", str(output),
               "--num-threads", str(threads), "--direct_running_mode=multi_processing",
               f"--direct_num_workers={workers}"]
    peaks: dict[int, int] = {}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        _worker_peaks(process.pid, peaks)
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"enrich run failed with {workers} worker(s):\n{stderr[-2000:]}")
    return {"workers": workers, "threads": threads, "seconds": seconds, "summary": stdout.strip(),
            "worker_peak_rss_mb": sorted(round(kb / 1024) for kb in peaks.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--omp-wait-policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY for the job (default: PASSIVE; on a machine shared "
                             "with other work, libgomp's spin-waiting slows multi-threaded runs "
                             "many times over, see RESULTS.md); '' keeps the environment's")
    args = parser.parse_args()
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    with tempfile.TemporaryDirectory() as scratch:
        inputs = Path(scratch) / "in"
        inputs.mkdir()
        write_shards(args.docs, inputs)
        rows = [run_with_workers(int(w), inputs, Path(scratch) / f"out-{w}") for w in args.workers.split(",")]
    print(f"{args.docs:,} documents, {os.cpu_count()} cores, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}\n")
    print("| workers | torch threads each | seconds | docs/s | peak RSS per worker (MB) |")
    print("| ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['workers']} | {row['threads']} | {row['seconds']:.1f} | {args.docs / row['seconds']:.1f} "
              f"| {', '.join(map(str, row['worker_peak_rss_mb'])) or 'n/a'} |")


if __name__ == "__main__":
    main()
