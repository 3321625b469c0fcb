"""How a run fails, in a module of its own so the ``enrich`` command can catch it without
importing Beam (``pipelines/enrich.py`` raises it)."""

from __future__ import annotations


class JobFailed(RuntimeError):
    """The run failed. ``published``: False, nothing of it was published; None, the pipeline
    publishes itself (``publish: pipeline``) and may have (or, if only the wait for it
    failed, may yet)."""

    def __init__(self, message: str, published: bool | None = False) -> None:
        super().__init__(message)
        self.published = published
