"""Flex Template entry point: the launcher runs this file with each template parameter as
``--name=value`` plus Dataflow's own pipeline options, and it runs ``enrich run`` with them.

Flex Templates pass every parameter with a value, so the one switch, ``streaming``, arrives
as ``--streaming=true|false``; it is turned back into the bare flag here.

The launcher stops once the job is submitted, so nothing may be left for ``enrich run`` to
do after the job: ``--publish=pipeline`` makes a batch job publish its output (and commit
its Kafka end offsets) as its own last step. It is not a template parameter.
"""

from __future__ import annotations

import sys

from inference_enrich.pipelines.cli import main


def run_arguments(argv: list[str]) -> list[str]:
    """``argv`` as ``enrich run`` takes it."""
    arguments = []
    for arg in argv:
        name, _, value = arg.partition("=")
        if name == "--streaming" and value:
            if value.lower() == "true":
                arguments.append("--streaming")
            continue
        arguments.append(arg)
    return ["run", *arguments, "--publish=pipeline"]


if __name__ == "__main__":
    sys.exit(main(run_arguments(sys.argv[1:])))
