"""Scale-out of reading (issue #22): one big JSONL file and many small ones, 1 and 2 workers.

    .venv/bin/python bench/bench_scaleout_reads.py [--big-mb 200] [--small-files 20000] [--workers 1,2]

What it measures: `ReadDocuments` (run-time matching, byte-range reads, JSON parsing and
validation into documents) and nothing after it: no inference, no writing. Each document is
counted per worker process id (a `CombinePerKey` fused into the reading stage), so the
share of the documents each worker read is exact. Each configuration runs in a fresh Python
process with `--runner=FnApiRunner --direct_running_mode=multi_processing
--direct_num_workers=N` (the 1-worker run pays the same process hand-off). Reported:

- docs/s: documents / seconds of `pipeline.run()` to `wait_until_finish()` (matching
  included, the Python start-up and input generation not);
- peak RSS: VmHWM of each SDK worker process, sampled from /proc while the job runs, and
  of the launching process;
- graph bytes: `len(pipeline.to_runner_api().SerializeToString())` of the pipeline run;
- share: each worker's documents / all documents.

The inputs: synthetic English-like records of 60-300 words (`{"id", "text"}`, ~1 KiB), one
file of `--big-mb` MB, and `--small-files` files of 5 records each. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scaleout import _worker_peaks  # noqa: E402

WORDS = ("whale ship sea captain harpoon voyage deck mast sail storm wind wave island crew "
         "ocean compass chart anchor rope tide harbour lantern night morning island").split()
SMALL_FILE_RECORDS = 5


def _record(rng: random.Random, key: str) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 300)))
    return json.dumps({"id": key, "text": text})


def write_big(path: Path, megabytes: int) -> int:
    rng, count, size = random.Random(0), 0, 0
    with path.open("w", encoding="utf-8") as stream:
        while size < megabytes * 1_000_000:
            line = _record(rng, f"big-{count}") + "\n"
            stream.write(line)
            size += len(line)
            count += 1
    return count


def write_small(directory: Path, files: int) -> int:
    rng = random.Random(1)
    directory.mkdir()
    for number in range(files):
        lines = [_record(rng, f"small-{number}-{i}") for i in range(SMALL_FILE_RECORDS)]
        (directory / f"part-{number:05d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files * SMALL_FILE_RECORDS


def run_one(pattern: str, workers: int, result_path: str) -> None:
    """In the child process: build and run the read-only pipeline, write what it measured."""
    import apache_beam as beam

    from inference_enrich.transforms.documents import DEAD_LETTER_TAG
    from inference_enrich.transforms.read_files import ReadDocuments

    argv = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    pipeline = beam.Pipeline(argv=argv)
    read = pipeline | ReadDocuments([pattern])
    per_pid = (read.documents
               | "ByPid" >> beam.Map(lambda _: (os.getpid(), 1))
               | "CountPerPid" >> beam.CombinePerKey(sum))
    dead = read[DEAD_LETTER_TAG] | "CountDead" >> beam.combiners.Count.Globally()
    _ = (per_pid | "PidsToList" >> beam.combiners.ToList()
         | "SavePids" >> beam.Map(lambda pids: Path(f"{result_path}.pids").write_text(json.dumps(pids))))
    _ = dead | "SaveDead" >> beam.Map(lambda count: Path(f"{result_path}.dead").write_text(str(count)))
    graph_bytes = len(pipeline.to_runner_api().SerializeToString())
    started = time.perf_counter()
    pipeline.run().wait_until_finish()
    seconds = time.perf_counter() - started
    Path(result_path).write_text(json.dumps({
        "seconds": seconds, "graph_bytes": graph_bytes,
        "per_pid": dict(json.loads(Path(f"{result_path}.pids").read_text())),
        "dead_letters": int(Path(f"{result_path}.dead").read_text())}))


def measure(pattern: str, workers: int, scratch: Path) -> dict:
    result = scratch / f"result-{workers}-{abs(hash(pattern))}.json"
    process = subprocess.Popen([sys.executable, __file__, "--run-one", pattern, str(workers), str(result)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    launcher_peak = 0
    while process.poll() is None:
        _worker_peaks(process.pid, peaks)
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    launcher_peak = max(launcher_peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.2)
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the {workers}-worker run of {pattern} failed:\n{stderr[-3000:]}")
    measured = json.loads(result.read_text())
    measured["worker_peak_rss_mb"] = sorted(round(kb / 1024) for kb in peaks.values())
    measured["launcher_peak_rss_mb"] = round(launcher_peak / 1024)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--run-one", nargs=3, metavar=("PATTERN", "WORKERS", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        pattern, workers, result = args.run_one
        run_one(pattern, int(workers), result)
        return
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        inputs = {
            f"one {args.big_mb} MB JSONL file": (str(scratch / "big.jsonl"), write_big(scratch / "big.jsonl", args.big_mb)),
            f"{args.small_files:,} small files": (str(scratch / "small"), write_small(scratch / "small", args.small_files)),
        }
        rows = []
        for name, (pattern, documents) in inputs.items():
            for workers in map(int, args.workers.split(",")):
                measured = measure(pattern, workers, scratch)
                read = sum(measured["per_pid"].values())
                if read != documents or measured["dead_letters"]:
                    raise RuntimeError(f"{name}, {workers} worker(s): read {read} of {documents} documents, "
                                       f"{measured['dead_letters']} dead letters")
                rows.append((name, workers, documents, measured))
    print(f"{os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| input | workers | documents | seconds | docs/s | graph bytes | share per worker | "
          "peak RSS per worker (MB) | launcher peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |")
    for name, workers, documents, m in rows:
        shares = ", ".join(f"{count / documents:.0%}" for count in sorted(Counter(m["per_pid"]).values(), reverse=True))
        print(f"| {name} | {workers} | {documents:,} | {m['seconds']:.1f} | {documents / m['seconds']:,.0f} "
              f"| {m['graph_bytes']:,} | {shares} | {', '.join(map(str, m['worker_peak_rss_mb'])) or 'n/a'} "
              f"| {m['launcher_peak_rss_mb']} |")


if __name__ == "__main__":
    main()
