"""Start-up of ``enrich infer`` (first answer, model load included), whole processes.

    python bench/bench_startup.py                         # this checkout, 3 rounds
    python bench/bench_startup.py --base /tmp/base        # and a base tree, interleaved

``--base DIR``: a folder holding a link ``inference_enrich`` to another checkout (e.g. one
``git archive`` of main); its runs put DIR first on PYTHONPATH, so the same interpreter
imports that code instead. Each round runs every (tree, command) once, in turn, so both
trees see the same machine load. Reported per run: wall seconds, CPU seconds (user + sys)
and the 1-minute load average at the start.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "infer sparse (my-elser-model)": ["infer", "sparse_embedding", "my-elser-model", "hi"],
    "infer dense (my-minilm)": ["infer", "text_embedding", "my-minilm", "hi"],
    "--help": ["--help"],
}


def run(argv: list[str], pythonpath: str | None) -> tuple[float, float, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="folder with an inference_enrich link to the base checkout")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    enrich = str(Path(sys.executable).with_name("enrich"))
    trees = {"this": None, **({"base": args.base} if args.base else {})}
    rows = []
    for round_ in range(args.rounds):
        for label, argv in COMMANDS.items():
            for tree, path in trees.items():
                wall, cpu, load = run([enrich, *argv], path)
                rows.append((label, tree, round_, wall, cpu, load))
                print(f"{label} [{tree}] round {round_}: {wall:.2f} s wall, {cpu:.2f} s CPU, load {load:.1f}",
                      file=sys.stderr)
    print("| command | tree | round | wall s | CPU s (user+sys) | load avg at start |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, tree, round_, wall, cpu, load in rows:
        print(f"| `enrich {' '.join(COMMANDS[label])}` | {tree} | {round_} | {wall:.2f} | {cpu:.2f} | {load:.1f} |")


if __name__ == "__main__":
    main()
