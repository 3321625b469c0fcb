"""The job configuration's declaration: one pydantic model, filled from a YAML file and
command-line flags.

Each setting is declared once, as a field of ``JobConfig``: type, default, constraint and
description, plus a ``Setting`` marker naming its file section (and its key there, where the
file's name differs from the field's). The file reader and its error messages (``FILE:
section.key: problem``, or ``command line: --flag: problem``; config_file.py, which documents
the file's format), the validation and the flags of ``enrich run`` (cli_options.py) all come
from that declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from inference_enrich.indexes.settings import DEFAULT_URLS, INDEX_SINKS, SINK_ALIASES, IndexSettings
from inference_enrich.inference.secrets import masked, protect_secrets
from inference_enrich.inference.validation import InvalidSetting
from inference_enrich.transforms.formats import FORMATS
from inference_enrich.transforms.kafka import KafkaSettings

SECTIONS = ("source", "inference", "sink")


@dataclass(frozen=True)
class Setting:
    """Where a ``JobConfig`` field lives in a config file and how the command line treats it."""

    section: str
    key: str | None = None  # the config file's key, where it differs from the field name
    metavar: str | None = None  # the value's placeholder in --help
    path: bool = False  # a relative path in a config file resolves against the file's directory
    secret: bool = False  # config file (or environment) only: no flag, never echoed

    def file_key(self, name: str) -> str:
        return self.key or name


def sample_corpus_path() -> str:
    """The bundled sample corpus (public-domain English text, see its LICENSE.md)."""
    return str(resources.files("inference_enrich.sample_data") / "sample_corpus.jsonl")


def _one_or_many(value: Any) -> Any:
    """A config file may give one string where a list is expected."""
    return [value] if isinstance(value, str) else value


def _current_sink_name(value: Any) -> Any:
    return SINK_ALIASES.get(value, value) if isinstance(value, str) else value


Strings = Annotated[list[str], BeforeValidator(_one_or_many)]
Format = Literal[FORMATS]  # type: ignore[valid-type]  # the readers transforms/formats.py has
SinkKind = Annotated[Literal[("parquet", *INDEX_SINKS)], BeforeValidator(_current_sink_name)]  # type: ignore[valid-type]
ClientConfig = Annotated[dict[str, Any], AfterValidator(protect_secrets)]


class JobConfig(BaseModel):
    """Everything a run needs besides Beam's own pipeline options (validated on creation)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # --- source ---
    source: Annotated[Literal["files", "kafka"], Setting("source", key="type")] = Field(
        "files", description="where documents come from")
    input: Annotated[Strings, Setting("source", metavar="URL_OR_GLOB", path=True)] = Field(
        default_factory=lambda: [sample_corpus_path()], min_length=1,
        description="input file, directory or glob; any fsspec URL (file://, memory://, s3://, "
        "gs://); repeat for several (default: the bundled sample corpus)")
    format: Annotated[Format | None, Setting("source")] = Field(
        None, description="input format (default: from the file extension)")
    kafka_bootstrap: Annotated[str | None, Setting("source", metavar="HOST:PORT")] = Field(
        None, min_length=1, description="Kafka bootstrap servers (required by the kafka source)")
    kafka_topic: Annotated[Strings, Setting("source", metavar="T")] = Field(
        default_factory=list, description="Kafka topic to read; repeat for several "
        "(required by the kafka source)")
    kafka_group: Annotated[str, Setting("source", metavar="G")] = Field(
        "inference-enrich", min_length=1,
        description="consumer group whose offsets are read and committed")
    kafka_auto_offset_reset: Annotated[Literal["earliest", "latest"], Setting("source")] = Field(
        "earliest", description="where a partition without a committed offset starts")
    kafka_reader: Annotated[Literal["python", "beam"], Setting("source")] = Field(
        "python", description="python: ours, on any runner; beam: Beam's cross-language "
        "ReadFromKafka, which needs a Java expansion service")
    kafka_config: Annotated[ClientConfig, Setting("source", secret=True)] = Field(
        default_factory=dict, description="confluent-kafka client settings (security.protocol, "
        "sasl.*, ssl.*, timeouts); values named like password, secret or token are never shown")
    streaming: Annotated[bool, Setting("source")] = Field(
        False, description="read Kafka without end (also sets Beam's --streaming)")
    stop_after_records: Annotated[int | None, Setting("source", metavar="N")] = Field(
        None, gt=0, description="streaming: stop after N records (per worker process)")
    stop_after_seconds: Annotated[float | None, Setting("source", metavar="T")] = Field(
        None, gt=0, description="streaming: stop after T seconds")

    # --- inference ---
    endpoints: Annotated[str | None, Setting("inference", metavar="FILE", path=True)] = Field(
        None, description="endpoints YAML over the packaged ones (default: the endpoint store)")
    inference_id: Annotated[str, Setting("inference", metavar="ID")] = Field(
        "my-elser-model", min_length=1, description="the inference endpoint to call")
    text_field: Annotated[str, Setting("inference", metavar="F")] = Field(
        "text", min_length=1, description="record field holding the text")
    id_field: Annotated[str, Setting("inference", metavar="F")] = Field(
        "id", min_length=1, description="record field holding the id; records without one get a "
        "stable hash of the record")
    output_field: Annotated[str, Setting("inference", metavar="F")] = Field(
        "embedding", min_length=1, description="field (column) for the inference result")
    max_batch_tokens: Annotated[int, Setting("inference", metavar="N")] = Field(
        8192, ge=1, description="padded tokens per forward pass")
    max_batch_size: Annotated[int, Setting("inference", metavar="N")] = Field(
        64, ge=1, description="documents per forward pass")
    num_threads: Annotated[int | None, Setting("inference", metavar="N")] = Field(
        None, ge=1, description="torch threads per worker (default: torch's choice)")

    # --- sink ---
    sink: Annotated[SinkKind, Setting("sink", key="type")] = Field(
        "parquet", description="where enriched records go: Parquet in --output, or an index "
        "('index' is still accepted for embedded)")
    output: Annotated[str, Setting("sink", metavar="DIR", path=True)] = Field(
        "enrich-output", min_length=1, description="output directory (any fsspec URL): Parquet "
        "part files and, for every sink, the dead letters in _dead_letter/")
    publish: Annotated[Literal["launcher", "pipeline"], Setting("sink")] = Field(
        "launcher", description="who publishes a batch run's output and commits its Kafka "
        "offsets: launcher (enrich run, after the job succeeded and every record was "
        "accounted for) or pipeline (its last step, for launchers that do not wait, such as "
        "a Dataflow Flex Template's)")
    mode: Annotated[Literal["error-if-exists", "overwrite", "append"] | None, Setting("sink")] = Field(
        None, description="save mode, as in Spark: error-if-exists (refuse a non-empty output), "
        "overwrite (replace what earlier enrich runs published there) or append (add to it); "
        "files enrich did not write are never removed (default: overwrite an earlier enrich "
        "output from files, append from Kafka, refuse any other non-empty directory)")
    max_dead_letter_ratio: Annotated[float, Setting("sink", metavar="R")] = Field(
        0.5, ge=0.0, le=1.0, description="fail the run, publishing nothing, when more than this "
        "share of the records read is dead-lettered (1 never fails)")
    es_url: Annotated[str | None, Setting("sink", key="url", metavar="URL")] = Field(
        None, min_length=1,
        description=f"Elasticsearch/OpenSearch URL (default: {DEFAULT_URLS['elasticsearch']})")
    index: Annotated[str, Setting("sink", metavar="NAME")] = Field(
        "enriched", min_length=1, description="Elasticsearch/OpenSearch index name")
    index_path: Annotated[str | None, Setting("sink", key="path", metavar="DIR", path=True)] = Field(
        None, min_length=1, description="embedded index directory (required by the embedded "
        "sink; one writer at a time)")
    api_key: Annotated[SecretStr | None, Setting("sink", secret=True)] = Field(
        None, description="Elasticsearch API key (better: ES_API_KEY in the environment)")
    username: Annotated[str | None, Setting("sink", metavar="NAME")] = Field(
        None, min_length=1, description="Elasticsearch/OpenSearch user (or ES_USERNAME / "
        "OPENSEARCH_USERNAME in the environment)")
    password: Annotated[SecretStr | None, Setting("sink", secret=True)] = Field(
        None, description="password of username (better: ES_PASSWORD / OPENSEARCH_PASSWORD in "
        "the environment)")
    api_key_file: Annotated[str | None, Setting("sink", metavar="FILE", path=True)] = Field(
        None, min_length=1, description="file holding the Elasticsearch API key (any fsspec URL, "
        "e.g. gs://...), read where the index is opened: how workers on Dataflow get it")
    password_file: Annotated[str | None, Setting("sink", metavar="FILE", path=True)] = Field(
        None, min_length=1, description="file holding the password of username (any fsspec URL), "
        "read where the index is opened")
    ca_certs: Annotated[str | None, Setting("sink", metavar="FILE", path=True)] = Field(
        None, min_length=1, description="CA certificates for an https URL")
    verify_certs: Annotated[bool, Setting("sink")] = Field(
        True, description="verify the server's TLS certificate (https)")

    def __repr_args__(self):
        """repr and str show secrets and URL passwords masked."""
        return [(name, masked(name, value)) for name, value in super().__repr_args__()]

    @model_serializer(mode="wrap")
    def _dump_masked(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """model_dump / model_dump_json show what repr shows (they are for display)."""
        return {name: masked(name, value) for name, value in dump(self).items()}

    @model_validator(mode="after")
    def _required_together(self) -> "JobConfig":
        if self.source == "kafka":
            for name in ("kafka_bootstrap", "kafka_topic"):
                if not getattr(self, name):
                    raise InvalidSetting(name, "required by the kafka source")
        if self.sink == "embedded" and not self.index_path:
            raise InvalidSetting("index_path", "required by the embedded sink (a directory)")
        if self.streaming and self.mode == "overwrite":
            raise InvalidSetting("mode", "a streaming run adds to its output as records arrive: it "
                                 "cannot replace it (use --mode append, or a batch run)")
        return self

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=self.kafka_bootstrap or "", topics=tuple(self.kafka_topic),
            group=self.kafka_group, auto_offset_reset=self.kafka_auto_offset_reset,
            client_config=dict(self.kafka_config), streaming=self.streaming,
            stop_after_records=self.stop_after_records,
            stop_after_seconds=self.stop_after_seconds, reader=self.kafka_reader,
        )

    def index_settings(self) -> IndexSettings:
        """Where the index sink writes (for ``sink`` other than parquet)."""
        return IndexSettings(
            kind=self.sink, url=self.es_url, index=self.index, path=self.index_path,
            api_key=self.api_key, username=self.username, password=self.password,
            ca_certs=self.ca_certs, verify_certs=self.verify_certs,
            api_key_file=self.api_key_file, password_file=self.password_file,
        )


def _setting(name: str) -> Setting:
    return next(m for m in JobConfig.model_fields[name].metadata if isinstance(m, Setting))


SETTINGS: dict[str, Setting] = {name: _setting(name) for name in JobConfig.model_fields}
"""JobConfig field -> its Setting, in declaration order."""


def flag(name: str) -> str:
    """The command-line flag of the JobConfig field ``name``."""
    return "--" + name.replace("_", "-")
