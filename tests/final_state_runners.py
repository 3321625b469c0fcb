"""Runners that run a pipeline for real, then report another final state.

The in-process runner either ends DONE or raises; Dataflow and the portable runners can also
end CANCELLED (a job cancelled by hand) or FAILED without raising from
``wait_until_finish``. These stand in for that verdict only, a fault the in-process runner
cannot produce: the pipeline itself runs on the real FnApiRunner. Use them by name, e.g.
``--runner=final_state_runners.CancelledRunner``.
"""

from __future__ import annotations

from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import PipelineState


class _ReportsFinalState(FnApiRunner):
    final_state = PipelineState.DONE

    def run_pipeline(self, pipeline, options):
        result = super().run_pipeline(pipeline, options)
        result._state = self.final_state
        return result


class CancelledRunner(_ReportsFinalState):
    final_state = PipelineState.CANCELLED


class FailedRunner(_ReportsFinalState):
    final_state = PipelineState.FAILED
