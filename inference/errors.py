"""Errors raised by the inference layer, worded for the person who has to fix them."""


class InferenceEnrichError(Exception):
    """Base class for every error this project raises on purpose."""


class EndpointConfigError(InferenceEnrichError):
    """An endpoint definition is invalid; the message names the file, the endpoint and the key."""


class UnknownEndpointError(InferenceEnrichError):
    """An inference id that no configured endpoint has."""


class IncompatibleTaskTypeError(InferenceEnrichError):
    """An endpoint was asked for a task type it was not created for (worded as Elasticsearch does)."""

    def __init__(self, requested: str, actual: str) -> None:
        super().__init__(
            f"Incompatible task_type, the requested type [{requested}] "
            f"does not match the model type [{actual}]"
        )
        self.requested = requested
        self.actual = actual


class ModelLoadError(InferenceEnrichError):
    """A model could not be located or loaded."""


class TextInferenceError(InferenceEnrichError):
    """One text of a request could not be tokenised or embedded; names which one and why."""

    def __init__(self, position: int, count: int, cause: Exception) -> None:
        super().__init__(f"text {position} of {count}: {type(cause).__name__}: {cause}")
        self.position = position
        self.cause = cause


class RemoteServiceError(InferenceEnrichError):
    """A remote inference service cannot be used: wrong URL or credentials, or it kept
    failing (429, 5xx, timeouts) past the retries. Fails the job: no document is to blame."""


class RemoteInputError(InferenceEnrichError):
    """A remote inference service refused one text (a 4xx naming the input); the message is
    the service's. Dead-letters that document only."""
