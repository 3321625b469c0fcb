"""File readers: records stream out one by one, and every unparseable record is reported."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inference_enrich.transforms.formats import compression_of, csv_reader, format_of, json_stream, source_item
from inference_enrich.transforms.formats.csv_reader import read_csv
from inference_enrich.transforms.formats.json_reader import read_json, read_jsonl
from inference_enrich.transforms.formats.parquet_reader import read_parquet
from inference_enrich.transforms.formats.text_reader import read_text


def items(reader, data: bytes):
    return list(reader(io.BytesIO(data), "text"))


class CountingStream(io.BytesIO):
    """Remembers how many bytes a reader took (the text wrappers close their stream when done)."""

    bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def read1(self, size=-1):
        chunk = super().read1(size)
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_json_array_is_parsed_element_by_element_across_chunk_boundaries(monkeypatch, chunk):
    monkeypatch.setattr(json_stream, "JSON_CHUNK_CHARS", chunk)
    data = '[\n {"text": "a b", "id": 1},\n 12345678901,\n "x" , {"text": "été"}, []\n]'.encode()
    got = items(read_json, data)
    assert [(i.line, i.value) for i in got] == [
        (2, {"text": "a b", "id": 1}),
        (3, 12345678901),
        (4, "x"),
        (4, {"text": "été"}),
        (4, []),
    ]


def test_json_array_error_reports_the_rest_of_the_file():
    got = items(read_json, b'[{"text": "ok"},\n {bad}, {"text": "lost"}]')
    assert got[0].value == {"text": "ok"}
    assert got[1].line == 2 and "array element 1" in got[1].error
    assert got[1].raw.startswith("{bad}")
    assert len(got) == 2


def test_json_single_object_and_empty_array():
    assert [i.value for i in items(read_json, b' {"text": "one"} ')] == [{"text": "one"}]
    assert items(read_json, b"[ ]") == []


def test_jsonl_reports_blank_invalid_and_undecodable_lines():
    got = items(read_jsonl, b'{"text": "x"}\n\n[1]\n{bad\n\xff\xfe\n{"text": "y"}')
    assert [i.line for i in got] == [1, 2, 3, 4, 5, 6]
    assert got[0].value == {"text": "x"} and got[5].value == {"text": "y"}
    assert got[1].error.startswith("blank line") and got[1].raw == ""
    assert got[2].value == [1]
    assert got[3].error.startswith("invalid JSON") and got[3].raw == "{bad"
    assert got[4].error.startswith("not valid UTF-8") and got[4].raw == "\\xff\\xfe"


def test_csv_rows_with_multiline_fields_bad_bytes_and_extra_fields():
    got = items(read_csv, b'id,text\n1,"hello\nworld"\n2,caf\xe9\n3,a,b\n4,fine\n')
    assert (got[0].line, got[0].value) == (2, {"id": "1", "text": "hello\nworld"})
    assert got[1].line == 4 and got[1].error == "not valid UTF-8" and "caf\\xe9" in got[1].raw
    assert got[2].line == 5 and "more fields" in got[2].error
    assert (got[3].line, got[3].value) == (6, {"id": "4", "text": "fine"})


def test_a_csv_row_with_extra_fields_keeps_the_whole_row_in_its_dead_letter():
    """The letter's raw text is the row (id and text included), not just the extra cells."""
    got = items(read_csv, b"id,text,extra\nc3,a,b,c,d\nc4,fine,x\n")
    assert got[0].error == "row has more fields than the header" and got[0].raw == "c3,a,b,c,d"
    assert got[1].value == {"id": "c4", "text": "fine", "extra": "x"}


def test_a_csv_quoted_field_that_never_closes_is_the_rest_of_the_file_in_one_dead_letter():
    """At the end of the file csv gives back the open field as if it had closed, so the rows
    after it became one record's text; now they are one read letter, as documented."""
    got = items(read_csv, b'id,text\nx1,"never closed\nx2,second\nx3,third\n')
    assert len(got) == 1 and got[0].value is None and got[0].rest_unread
    assert got[0].line == 2 and "never closes" in got[0].error and got[0].raw.startswith('x1,"never closed')
    sloppy = items(read_csv, b'id,text\nt1,a 5" screen\n')  # a quote inside an unquoted field
    assert sloppy[0].value == {"id": "t1", "text": 'a 5" screen'}


def test_text_lines_are_documents_and_blank_lines_are_separators():
    got = items(read_text, b"first line\n\n  \nsecond\n")
    assert [(i.line, i.value, i.blank) for i in got] == [
        (1, {"text": "first line"}, False),
        (2, None, True),
        (3, None, True),
        (4, {"text": "second"}, False),
    ]


def test_parquet_rows_keep_their_types():
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2], "text": ["a", "b"], "score": [0.5, None]}), buffer)
    got = items(read_parquet, buffer.getvalue())
    assert [(i.line, i.value) for i in got] == [
        (1, {"id": 1, "text": "a", "score": 0.5}),
        (2, {"id": 2, "text": "b", "score": None}),
    ]


@pytest.mark.parametrize(
    "path, fmt, codec",
    [
        ("a/b.jsonl", "jsonl", None),
        ("s3://x/b.ndjson.gz", "jsonl", "gzip"),
        ("b.json.bz2", "json", "bz2"),
        ("b.csv.zst", "csv", "zstd"),
        ("b.parquet", "parquet", None),
        ("b.TXT", "text", None),
    ],
)
def test_format_and_compression_from_extension(path, fmt, codec):
    assert format_of(path) == fmt
    assert compression_of(path) == codec


def test_unknown_extension_asks_for_format():
    with pytest.raises(ValueError, match="pass --format"):
        format_of("data.xml")


HUGE_FIELD = "whale " * 33_334  # 200,004 characters: over csv's default field_size_limit (131,072)


def test_csv_field_of_200k_characters_costs_no_other_row():
    data = f'id,text\n1,first\n2,"{HUGE_FIELD}"\n3,{HUGE_FIELD}\n4,last\n'.encode()
    got = items(read_csv, data)
    assert [(i.line, i.error) for i in got] == [(2, None), (3, None), (4, None), (5, None)]
    assert [i.value["text"] for i in got] == ["first", HUGE_FIELD, HUGE_FIELD, "last"]


def test_csv_row_over_the_field_bound_is_one_dead_letter_and_reading_resumes_at_the_next_row(monkeypatch):
    monkeypatch.setattr(csv_reader, "MAX_CSV_FIELD_CHARS", 1000)
    long = "x" * 700
    data = (
        f'id,text\n1,a\n2,"{long}\n{long}\n""quoted"", {long}"\n3,{long}{long},tail\n'
        f'4,"ok, ""fine""\nstill 4"\n5,"{long}\n{long}\nnever closed\n6,swallowed\n'
    ).encode()
    got = items(read_csv, data)
    assert [(i.line, i.value) for i in got if i.error is None] == [
        (2, {"id": "1", "text": "a"}),
        (7, {"id": "4", "text": 'ok, "fine"\nstill 4'}),
    ]
    errors = [(i.line, i.rest_unread) for i in got if i.error is not None]
    assert errors == [(3, False), (6, False), (9, True)]
    assert all("field larger than field limit (1000)" in i.error for i in got if i.error)
    assert got[1].raw.startswith('2,"xxx') and got[2].raw.startswith("3,xxx")
    assert "never closes" in got[4].error


def test_json_array_with_a_malformed_element_reads_no_unbounded_remainder():
    good = [{"id": i, "text": f"document {i}"} for i in range(200_000)]
    head = ",\n".join(json.dumps(r) for r in good[:1000])
    tail = ",\n".join(json.dumps(r) for r in good[1000:])
    data = f"[{head},\n{{bad element}},\n{tail}]".encode()
    stream = CountingStream(data)
    got = list(read_json(stream, "text"))
    assert [i.value for i in got[:1000]] == good[:1000]
    (cut,) = got[1000:]
    assert cut.line == 1001 and cut.rest_unread and "array element 1000" in cut.error
    assert cut.raw.startswith("{bad element}")
    assert stream.bytes_read < len(head) + 4 * source_item.MAX_RAW_CHARS < len(data) // 10


def test_json_array_element_over_the_size_bound_stops_reading(monkeypatch):
    monkeypatch.setattr(json_stream, "MAX_JSON_ELEMENT_CHARS", 10_000)
    monkeypatch.setattr(json_stream, "JSON_CHUNK_CHARS", 100)
    data = b'[{"text": "ok"}, {"text": "' + b"x" * 1_000_000 + b'"}, {"text": "after"}]'
    stream = CountingStream(data)
    got = list(read_json(stream, "text"))
    assert got[0].value == {"text": "ok"}
    assert len(got) == 2 and got[1].rest_unread and "larger than 10000 characters" in got[1].error
    assert stream.bytes_read < 100_000
