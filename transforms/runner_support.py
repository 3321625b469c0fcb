"""What the runner a pipeline runs on can do, asked where a transform is applied, so that
a part a runner cannot run is refused at start in one line instead of giving a wrong answer.

The DaskRunners are named by class path: importing them would import dask.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

BEAM_DASK = "apache_beam.runners.dask.dask_runner.DaskRunner"
OUR_DASK = "inference_enrich.pipelines.dask_runner.DaskRunner"
BUNDLE_BASED_DIRECT = "apache_beam.runners.direct.direct_runner.BundleBasedDirectRunner"
LOSSY_RUNNERS = {
    BEAM_DASK: ("Beam's DaskRunner runs only the pipeline's last branch, sends a ParDo's tagged "
                f"outputs to every consumer and drops finish_bundle outputs; use --runner {OUR_DASK}"),
}
NO_METRICS_RUNNERS = {BEAM_DASK, OUR_DASK}
NO_SPLITTABLE_DOFN_RUNNERS = {
    BEAM_DASK, OUR_DASK,
    # It checks that a restriction is done before it has consumed the outputs of ``process``
    # (a generator), so a splittable read that streams its records always fails there.
    BUNDLE_BASED_DIRECT,
}

NO_BUNDLE_FINALIZATION_RUNNERS = {
    BUNDLE_BASED_DIRECT, "BundleBasedDirectRunner",
    "apache_beam.runners.portability.flink_runner.FlinkRunner", "FlinkRunner",
}
"""They never call bundle finalization callbacks, by which unbounded output is published."""
IN_PROCESS_RUNNERS = {"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                      "InteractiveRunner"}
"""By class name: they run the job inside the launching process, which outlives it."""
PER_USE_SIDE_INPUT_RUNNERS = {OUR_DASK}
"""They compute a side input anew for each step that reads it: a value made when the
pipeline runs (a run id) differs from step to step there."""


def runner_path(runner: Any) -> str:
    """A runner (object, class or ``--runner`` value) as ``module.Class`` when it is a class
    path or an instance, else as given (Beam's short names)."""
    if runner is None:
        return ""
    if isinstance(runner, str):
        return runner
    cls = runner if isinstance(runner, type) else type(runner)
    return f"{cls.__module__}.{cls.__qualname__}"


def runs_in_process(runner: Any) -> bool:
    """Whether ``runner`` (None: Beam's default, FnApiRunner) runs the job in this process."""
    return (runner_path(runner) or "FnApiRunner").rsplit(".", 1)[-1] in IN_PROCESS_RUNNERS


def options_runner(options: PipelineOptions) -> str:
    return runner_path(options.view_as(StandardOptions).runner)


def refuse_lossy_runner(pipeline: beam.Pipeline, what: str) -> None:
    """Raises ValueError, in one line, when ``pipeline``'s runner would lose ``what``'s data."""
    reason = LOSSY_RUNNERS.get(runner_path(getattr(pipeline, "runner", None)))
    if reason:
        raise ValueError(f"{what} cannot run here: {reason}")


def supports_splittable_dofns(pipeline: beam.Pipeline) -> bool:
    """False on runners that cannot run a splittable DoFn (``NO_SPLITTABLE_DOFN_RUNNERS``):
    a reader then reads each file whole."""
    return runner_path(getattr(pipeline, "runner", None)) not in NO_SPLITTABLE_DOFN_RUNNERS


def refuse_without_bundle_finalization(pipeline: beam.Pipeline, what: str) -> None:
    """Raises ValueError, in one line, when ``pipeline``'s runner never finalizes bundles:
    unbounded output, published only by bundle finalization, would stay in staging."""
    runner = runner_path(getattr(pipeline, "runner", None))
    if runner in NO_BUNDLE_FINALIZATION_RUNNERS:
        raise ValueError(f"{what} from unbounded input cannot run on {runner}: it never calls "
                         "bundle finalization, which publishes each bundle's files; use FnApiRunner "
                         "or Dataflow")


def side_inputs_computed_once(pipeline: beam.Pipeline) -> bool:
    """False on runners that compute a side input per use (``PER_USE_SIDE_INPUT_RUNNERS``)."""
    return runner_path(getattr(pipeline, "runner", None)) not in PER_USE_SIDE_INPUT_RUNNERS
