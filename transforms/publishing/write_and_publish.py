"""Publish what a sink staged, as pipeline steps behind a barrier: on every runner.

The public writers (``WriteEnrichedParquet(directory)``, ``WriteDeadLetters(directory)`` and
their Beam YAML forms) stage their files (``bundle_files``) and then, in the same pipeline,
``CommitManifest`` (a global combine: it fires once every writing bundle has committed) and
a step that calls ``publish_output`` (``publishing.publish``), the one publisher ``enrich
run`` uses too; ``PublishOutput`` is that step for ``enrich run --publish pipeline``. No runner
hook is involved: bundle finalization, which Flink and ``BundleBasedDirectRunner`` never
call, is used only for unbounded input (streaming), where there is no end to wait for; it is
refused where the pipeline is built on runners known not to call it (``runner_support``).
The run id is made when the pipeline runs (a side input), so each run of one graph has its
own staging and publish.

The publish step may be retried: ``publish_output`` is idempotent (see its module).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from inference_enrich.transforms.bundle_files import BundleFileWriter, CommitManifest, RunFiles
from inference_enrich.transforms.publishing.accounting import dead_letter_problem, records_missing
from inference_enrich.transforms.publishing.publish import new_run_id, publish_output, release_lock
from inference_enrich.transforms.runner_support import (
    refuse_lossy_runner, refuse_without_bundle_finalization, side_inputs_computed_once,
)

LOG = logging.getLogger(__name__)
RUN_ID_AT_RUN_TIME = "run-id-made-at-run-time"
"""Stands in for the run id until the pipeline runs (each step gets it as a side input)."""


class _Publish(beam.DoFn):
    """Publishes the manifest's files (its single input), then emits their names. It adds
    them to the directory (``replace=False``), as the public writers always have: two
    writers publish into one directory (Parquet at its top, dead letters in
    ``_dead_letter/``), and a replacing publish of the top would remove the other's files
    (``publish_output`` replaces dead letters too)."""

    def __init__(self, run_files: RunFiles, announce: bool) -> None:
        self._run_files = run_files
        self._announce = announce

    def process(self, names: list[str], run_id: str | None = None) -> Iterator[str]:
        count = publish_output(self._run_files.for_run(run_id), replace=False)
        if self._announce:
            print(f"published {count} file(s) in {self._run_files.output}", flush=True)
        else:
            LOG.info("published %d file(s) in %s", count, self._run_files.output)
        yield from names


class WriteAndPublish(beam.PTransform):
    """Elements -> files written by ``writer(run_files)`` -> published into ``output``.

    Bounded input: staged, then published by the pipeline's own last steps (``_SUCCESS``
    written, staging removed). Unbounded input: each bundle's file is published when the
    runner finalizes the bundle (no ``_SUCCESS``). Returns the names of the published
    files, relative to ``output`` (bounded input only).
    """

    def __init__(self, writer: Callable[[RunFiles], BundleFileWriter], output: str,
                 announce: bool = False) -> None:
        """``announce``: print one line when published (for Beam YAML's launcher, which
        prints no summary of its own; on remote workers it goes to their logs)."""
        super().__init__()
        self._writer = writer
        self._output = output
        self._announce = announce

    def expand(self, elements):
        refuse_lossy_runner(elements.pipeline, f"writing {self._output}")
        if not elements.is_bounded:
            refuse_without_bundle_finalization(elements.pipeline, f"writing {self._output}")
            return elements | "WriteFiles" >> beam.ParDo(
                self._writer(RunFiles.published_per_bundle(self._output)))
        # The run id is made when the pipeline runs, not when it is built: each run of one
        # graph (a classic template, a notebook's second ``p.run()``) stages and publishes
        # on its own, instead of taking the first run's ``_SUCCESS`` for its own.
        # Our Dask runner computes a side input per use, so there the id is made here (a
        # graph run again then shares it: ``publish_output`` tells such a run by its files).
        if side_inputs_computed_once(elements.pipeline):
            run_id = beam.pvalue.AsSingleton(elements.pipeline | "Start" >> beam.Create([None])
                                             | "NewRunId" >> beam.Map(lambda _: new_run_id()))
            run_files = RunFiles(self._output, RUN_ID_AT_RUN_TIME)
        else:
            run_id, run_files = None, RunFiles(self._output, new_run_id())
        side = {} if run_id is None else {"run_id": run_id}
        return (
            elements
            | "WriteFiles" >> beam.ParDo(self._writer(run_files), **side)
            | "OneWindow" >> beam.WindowInto(GlobalWindows())
            | "CommitManifest" >> CommitManifest(run_files, run_id)
            | "Publish" >> beam.ParDo(_Publish(run_files, self._announce), **side)
        )


class PublishOutput(beam.DoFn):
    """Publishes the run's output inside the pipeline, once ``CommitManifest`` has written
    the manifest (its single output), then runs ``after_publish`` (committing the Kafka end
    offsets) and releases the run's lock on the output: for launchers that do not wait for
    the job, such as a Dataflow Flex Template's. A retried attempt finishes what an earlier
    one began (``publish_output`` is idempotent). It refuses to publish unless the records
    that reached the writers (output and dead letters) number exactly the records read, and
    the share of dead letters is within ``max_dead_letter_ratio``: the in-pipeline form of
    ``run_job``'s checks (``accounting``)."""

    def __init__(self, run_files: RunFiles, replace: bool,
                 after_publish: Callable[[], None] | None = None, max_dead_letter_ratio: float = 1.0,
                 describe: Callable[[list], str] | None = None) -> None:
        self._run_files = run_files
        self._replace = replace
        self._after_publish = after_publish
        self._max_ratio = max_dead_letter_ratio
        self._describe = describe

    def process(self, _manifest: Any, records_read: int, records_landed: int, dead_letters: int = 0,
                digest: list | None = None) -> None:
        missing = records_missing(records_read, records_landed, exact=True)
        if missing:
            raise RuntimeError(f"{missing}: nothing was published")
        described = self._describe(digest or []) if self._describe is not None else ""
        problem = dead_letter_problem(records_read, dead_letters, self._max_ratio, described)
        if problem:
            raise RuntimeError(f"{problem}: nothing was published")
        count = publish_output(self._run_files, self._replace)
        LOG.info("published %d file(s) of run %s", count, self._run_files.run_id)
        if self._after_publish is not None:
            self._after_publish()
        fs, output, _ = self._run_files.paths()
        release_lock(fs, output, self._run_files.run_id)
