"""Which models a ``PUT``/``_update`` may name: the packaged ones, directories under the
operator's ``--model-root``s, and Elasticsearch's built-in model ids mapped to packaged ones.

Anything else is one 400 whose wording depends only on what the client sent, never on the
server's disk (an existing ``/etc`` and a missing ``/root/.nope`` get the same answer), so
a key cannot probe the filesystem or load an arbitrary directory as a model. The check is
on the path as written, not resolved: links inside a root were put there by the operator
and may point anywhere. A path naming ``..`` is refused: collapsing it as text would check
``root/x`` while the OS, after a link, reads next to the link's target.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from inference_enrich.inference.models import BUILT_IN_MODELS
from inference_enrich.server.errors import ApiError

LOG = logging.getLogger(__name__)

LOCAL_SERVICE = "transformers"
ELASTICSEARCH_SERVICES = ("elasticsearch", "elser")
"""Elasticsearch's services that run its own models (``elser`` is the older name)."""
ELASTICSEARCH_ONLY_SETTINGS = ("num_allocations", "num_threads", "adaptive_allocations", "deployment_id")
"""Deployment settings of an Elasticsearch ML node: nothing to do here, so dropped."""
ELASTICSEARCH_MODELS: tuple[tuple[str, str, str, dict[str, Any], str], ...] = (
    # (model id prefix, task type, packaged model, its settings, what the user should know)
    (".elser_model_2", "sparse_embedding", "splade-tiny", {"max_sequence_length": 512},
     "ELSER v2 is not packaged; SPLADE-tiny is the same kind of model (a learned sparse "
     "English encoder) with its own vocabulary weights"),
    (".elser_model_1", "sparse_embedding", "splade-tiny", {"max_sequence_length": 512},
     "ELSER v1 is not packaged; SPLADE-tiny is the same kind of model"),
    (".multilingual-e5-small", "text_embedding", "all-minilm-l6-v2", {},
     "multilingual-e5-small is not packaged; all-MiniLM-L6-v2 has its 384 dimensions but "
     "is English only, and its vectors are not comparable to E5's"),
)


@dataclass(frozen=True)
class ModelRoots:
    """The directories under which a request may name a model directory."""

    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, roots: list[str] | tuple[str, ...] | None) -> "ModelRoots":
        return cls(tuple(Path(os.path.normpath(os.path.abspath(os.path.expanduser(r)))) for r in roots or ()))

    def allows(self, model_id: str) -> bool:
        if model_id in BUILT_IN_MODELS:
            return True
        if not model_id or "\0" in model_id:
            return False
        if ".." in Path(model_id).parts:  # after a link, the OS would climb from its target
            return False
        path = os.path.normpath(os.path.abspath(os.path.expanduser(model_id)))
        return any(path != str(root) and os.path.commonpath([path, str(root)]) == str(root)
                   for root in self.roots)

    def check(self, model_id: Any) -> None:
        if not isinstance(model_id, str) or not self.allows(model_id):
            where = ("a directory under one of the server's model roots (--model-root)" if self.roots
                     else "no model directory (the server has no --model-root)")
            raise ApiError(400, "status_exception",
                           f"[service_settings.model_id] [{model_id}] is not a model this server may load: "
                           f"use a packaged model ({', '.join(sorted(BUILT_IN_MODELS))}) or {where}")


def check_body_models(body: Mapping[str, Any], roots: ModelRoots) -> None:
    """Refuse a local-model body whose ``model_id`` is outside what the operator allows;
    remote services name a remote model and are not checked."""
    settings = body.get("service_settings")
    if body.get("service") == LOCAL_SERVICE and isinstance(settings, Mapping) and "model_id" in settings:
        roots.check(settings["model_id"])


def map_elasticsearch_service(body: dict[str, Any], task_type: str | None) -> tuple[dict[str, Any], str | None]:
    """A PUT body for Elasticsearch's own models (``service: elasticsearch``, model id
    ``.elser_model_2…``) as the body of the packaged equivalent, and a sentence saying what
    was mapped (None: the body is not such a body and is returned as it came)."""
    if body.get("service") not in ELASTICSEARCH_SERVICES:
        return body, None
    given = body.get("service_settings")
    settings: Mapping[str, Any] = given if isinstance(given, Mapping) else {}  # `elser` may give none
    model_id = settings.get("model_id")
    if body.get("service") == "elser" and model_id is None:
        model_id = ".elser_model_2"
    for prefix, model_task, packaged, extra, note in ELASTICSEARCH_MODELS:
        if isinstance(model_id, str) and model_id.startswith(prefix):
            wanted = task_type or body.get("task_type")
            if wanted not in (None, model_task):
                raise ApiError(400, "status_exception",
                               f"[{model_id}] does [{model_task}], not [{wanted}]")
            kept = {k: v for k, v in settings.items()
                    if k not in ELASTICSEARCH_ONLY_SETTINGS and k != "model_id"}
            mapped = {**body, "service": LOCAL_SERVICE, "task_type": model_task,
                      "service_settings": {"model_id": packaged, **extra, **kept}}
            message = (f"service [{body['service']}] model [{model_id}] mapped to service "
                       f"[{LOCAL_SERVICE}] model [{packaged}]: {note}")
            LOG.info("%s", message)
            return mapped, message
    known = ", ".join(f"{prefix}* -> {packaged}" for prefix, _, packaged, _, _ in ELASTICSEARCH_MODELS)
    raise ApiError(400, "status_exception",
                   f"service [{body['service']}] runs Elasticsearch's built-in models; this server maps "
                   f"{known}; model_id [{model_id}] is none of them: use service [{LOCAL_SERVICE}] with a "
                   f"packaged model ({', '.join(sorted(BUILT_IN_MODELS))}) or a directory under a --model-root")
