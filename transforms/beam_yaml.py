"""Our transforms for Beam YAML pipelines (``python -m apache_beam.yaml.main``).

A pipeline names them in a ``providers:`` block of ``type: python``; Beam imports each by its
fully qualified name in the launching process (no expansion service, no Java, no network)::

    providers:
      - type: python
        config: {}
        transforms:
          ReadDocuments: inference_enrich.transforms.beam_yaml.ReadDocuments
          Enrich: inference_enrich.transforms.beam_yaml.Enrich
          WriteEnrichedParquet: inference_enrich.transforms.beam_yaml.WriteEnrichedParquet
          WriteToSearchIndex: inference_enrich.transforms.beam_yaml.WriteToSearchIndex
          WriteDeadLetters: inference_enrich.transforms.beam_yaml.WriteDeadLetters

Each one wraps the public transform of the same name and takes plain YAML config (strings,
numbers) where that one takes objects: an endpoint by ``inference_id`` (and
``endpoints_file``), index settings by key. Credentials are never config values: they come
from files (``api_key_file``, ``password_file``) or the environment (``ES_API_KEY``, ...).

Dead letters follow Beam YAML's error-handling convention. With
``error_handling: {output: NAME}`` the records that cannot be read, enriched or indexed come
out as the output ``NAME``, as rows of ``DEAD_LETTER_ROW`` (``beam_yaml_errors``: the job's dead letters, the
record as a JSON string so that every row has one schema); ``WriteDeadLetters`` writes them
as the job writes its own. Without it, the first such record fails the pipeline, as Beam's
own transforms do: none is dropped silently.
"""

# No `from __future__ import annotations`: Beam YAML reads these signatures' types at run
# time (InlineProvider.config_schema) to describe and validate the transforms' config.
import logging
from typing import Optional, Sequence, Union

import apache_beam as beam
from apache_beam.yaml.yaml_errors import ErrorHandlingConfig

from inference_enrich.indexes import IndexSettings, IndexSpec
from inference_enrich.inference import Endpoint, resolve_endpoint
from inference_enrich.inference.api import embedding_dimensions
from inference_enrich.transforms import dead_letters, enrich, read_files, write_index, write_parquet
from inference_enrich.transforms.documents import DEAD_LETTER_TAG, RecordFields
from inference_enrich.transforms.beam_yaml_errors import dead_letter_dict, error_output, with_dead_letters
from inference_enrich.transforms.inference_dofn import BatchingConfig



class _DropStringHintNotes(logging.Filter):
    """Beam's YAML launcher logs at INFO, and Beam notes there every string type hint it
    reads as Any: our modules' postponed annotations made some 70 such lines per run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Converting string literal type hint to Any")


logging.getLogger("apache_beam.typehints.native_type_compatibility").addFilter(_DropStringHintNotes())

def _endpoint(inference_id: str, endpoints_file: Optional[str]) -> Endpoint:
    return resolve_endpoint(inference_id, endpoints_file)


class ReadDocuments(beam.PTransform):
    """Reads documents from files: JSON Lines, JSON arrays, CSV, Parquet or text, on any
    fsspec URL, compressed or not. Output ``documents`` feeds ``Enrich``.

    Args:
      path: a file, directory or glob (any fsspec URL), or a list of them.
      format: jsonl, json, csv, parquet or text (default: from the file extension).
      text_field: the record field holding the text.
      id_field: the record field holding the id (without one: a stable hash of the record).
      error_handling: where records that cannot be parsed or validated go.
    """

    def __init__(self, path: Union[str, Sequence[str]], format: Optional[str] = None,
                 text_field: str = "text", id_field: str = "id",
                 error_handling: Optional[ErrorHandlingConfig] = None) -> None:
        super().__init__()
        self._error_handling = error_handling
        error_output(error_handling)  # a mistake fails while the pipeline is built
        patterns = [path] if isinstance(path, str) else list(path)
        self._read = read_files.ReadDocuments(patterns, format, RecordFields(text_field, id_field))

    def expand(self, pbegin):
        read = pbegin | "Read" >> self._read
        return with_dead_letters({"documents": read.documents}, read[DEAD_LETTER_TAG],
                                 self._error_handling)


class Enrich(beam.PTransform):
    """Calls an inference endpoint on each record's text, in token-budgeted batches. Takes
    rows, dicts or ``ReadDocuments``' documents; output ``enriched``: enriched records
    (``EnrichedRecord``: mappings of the input fields plus the output field, ``is_truncated``
    and ``id``), which the writers take as they are.

    Args:
      inference_id: the endpoint to call, an id in the endpoints file.
      endpoints_file: endpoints YAML (default: the packaged configs/endpoints.yaml).
      text_field: the record field holding the text.
      id_field: the record field holding the id (without one: a stable hash of the record).
      output_field: the field that receives the embedding.
      max_batch_tokens: padded tokens per forward pass.
      max_batch_size: documents per forward pass.
      num_threads: torch threads per worker (default: torch's choice).
      error_handling: where records that are invalid or that the model fails on go.
    """

    def __init__(self, inference_id: str, endpoints_file: Optional[str] = None,
                 text_field: str = "text", id_field: str = "id", output_field: str = "embedding",
                 max_batch_tokens: int = BatchingConfig.max_batch_tokens,
                 max_batch_size: int = BatchingConfig.max_batch_size,
                 num_threads: Optional[int] = None,
                 error_handling: Optional[ErrorHandlingConfig] = None) -> None:
        super().__init__()
        self._error_handling = error_handling
        error_output(error_handling)
        self._enrich = enrich.Enrich(
            inference_id, endpoints_file=endpoints_file, text_field=text_field, id_field=id_field,
            output_field=output_field,
            batching=BatchingConfig(max_batch_tokens=max_batch_tokens, max_batch_size=max_batch_size),
            num_threads=num_threads,
        )

    def expand(self, records):
        enriched, letters = records | "Enrich" >> self._enrich
        return with_dead_letters({"enriched": enriched}, letters, self._error_handling)


class WriteEnrichedParquet(beam.PTransform):
    """Writes ``Enrich``'s output as ``part-*.parquet`` files in a directory, with the job's
    schema (README, "Outputs"), published by the pipeline's last steps with ``_SUCCESS``
    (on every runner), and prints one line saying so. Output ``files``: the names published.

    Args:
      path: the output directory (any fsspec URL).
      inference_id: the endpoint ``Enrich`` called (its task type fixes the column type).
      endpoints_file: endpoints YAML (default: the packaged configs/endpoints.yaml).
      text_field: the text field, as given to ``Enrich``.
      output_field: the output field, as given to ``Enrich``.
    """

    def __init__(self, path: str, inference_id: str, endpoints_file: Optional[str] = None,
                 text_field: str = "text", output_field: str = "embedding") -> None:
        super().__init__()
        endpoint = _endpoint(inference_id, endpoints_file)
        self._write = write_parquet.WriteEnrichedParquet(
            path, text_field, output_field, endpoint.task_type,
            chunked=endpoint.chunking_settings is not None, announce=True)

    def expand(self, enriched):
        return {"files": enriched | "Write" >> self._write}


class WriteToSearchIndex(beam.PTransform):
    """Writes ``Enrich``'s output to Elasticsearch, OpenSearch or the embedded index, by id
    (README, "Search indexes"). Credentials come from files (``api_key_file``,
    ``password_file``) or the environment: ES_API_KEY, ES_USERNAME/ES_PASSWORD,
    OPENSEARCH_USERNAME/OPENSEARCH_PASSWORD.

    Args:
      sink: elasticsearch, opensearch or embedded.
      inference_id: the endpoint ``Enrich`` called (its task type fixes the field mapping).
      endpoints_file: endpoints YAML (default: the packaged configs/endpoints.yaml).
      url: the cluster URL (default: http://127.0.0.1:9200).
      index: the index name (elasticsearch, opensearch).
      path: the embedded index directory (embedded).
      username: the cluster user.
      api_key_file: a file holding the Elasticsearch API key (any fsspec URL).
      password_file: a file holding the user's password (any fsspec URL).
      ca_certs: CA certificates for an https URL.
      verify_certs: verify the server's TLS certificate.
      text_field: the text field, as given to ``Enrich``.
      output_field: the output field, as given to ``Enrich``.
      error_handling: where documents the index rejects go.
    """

    def __init__(self, sink: str, inference_id: str, endpoints_file: Optional[str] = None,
                 url: Optional[str] = None, index: str = "enriched", path: Optional[str] = None,
                 username: Optional[str] = None, api_key_file: Optional[str] = None,
                 password_file: Optional[str] = None, ca_certs: Optional[str] = None,
                 verify_certs: bool = True, text_field: str = "text",
                 output_field: str = "embedding",
                 error_handling: Optional[ErrorHandlingConfig] = None) -> None:
        super().__init__()
        self._error_handling = error_handling
        error_output(error_handling)
        endpoint = _endpoint(inference_id, endpoints_file)
        settings = IndexSettings(kind=sink, url=url, index=index, path=path, username=username,
                                 ca_certs=ca_certs, verify_certs=verify_certs,
                                 api_key_file=api_key_file, password_file=password_file)
        spec = IndexSpec(text_field, output_field, endpoint.task_type, embedding_dimensions(endpoint),
                         chunked=endpoint.chunking_settings is not None)
        self._write = write_index.WriteToSearchIndex(settings, spec)

    def expand(self, enriched):
        return with_dead_letters({}, enriched | "Write" >> self._write, self._error_handling)


class WriteDeadLetters(beam.PTransform):
    """Writes dead letters (the error outputs above, or the job's) as JSON Lines in
    ``path/_dead_letter/part-*.jsonl``, one dead letter per line as ``enrich run`` writes them.

    Args:
      path: the output directory (any fsspec URL); the files go in its _dead_letter/.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._write = dead_letters.WriteDeadLetters(path, announce=True)

    def expand(self, letters):
        return {"files": letters | "AsDeadLetters" >> beam.Map(dead_letter_dict) | "Write" >> self._write}


TRANSFORMS = ("ReadDocuments", "Enrich", "WriteEnrichedParquet", "WriteToSearchIndex", "WriteDeadLetters")
"""The transforms this module offers Beam YAML, each under its class's name."""


def providers_block() -> str:
    """The ``providers:`` block (as in the module's docstring) that lets a Beam YAML pipeline name every transform
    of ``TRANSFORMS``: one place that spells their fully qualified names."""
    names = "".join(f"      {name}: inference_enrich.transforms.beam_yaml.{name}\n" for name in TRANSFORMS)
    return f"providers:\n  - type: python\n    config: {{}}\n    transforms:\n{names}"
