"""Faults inside inference: a text the tokenizer rejects, one model shared by threads (#10)."""

from __future__ import annotations

import json
import threading

import pytest

from inference_enrich.inference import infer_texts, load_endpoints, load_runtime
from inference_enrich.pipelines.config import JobConfig

from pipeline_helpers import read_dead_letters, read_output, run, sparse, write_lines

# Valid JSON whose text holds a lone UTF-16 surrogate (half an emoji, as truncating tweets
# or logs produces). Python decodes it to a str the Rust tokenizer cannot take:
# "TypeError: TextEncodeInput must be Union[TextInputSequence, ...]".
LONE_SURROGATE_LINE = b'{"id": "half-emoji", "text": "a broken emoji \\ud83d in a tweet", "n": 7}'


def test_text_the_tokenizer_rejects_is_one_dead_letter_not_a_failed_bundle(tmp_path, sparse_runtime):
    source = write_lines(
        tmp_path / "in.jsonl",
        [b'{"id": "ok-1", "text": "The whale surfaced near the ship."}',
         LONE_SURROGATE_LINE,
         b'{"id": "ok-2", "text": "Ships sail the sea."}'],
    )
    output = str(tmp_path / "out")
    summary = run(JobConfig(input=[str(source)], output=output))

    rows = read_output(output)
    assert set(rows) == {"ok-1", "ok-2"}
    for result, key in zip(infer_texts(sparse_runtime, [rows["ok-1"]["text"], rows["ok-2"]["text"]]),
                           ("ok-1", "ok-2")):
        assert sparse(rows[key]) == pytest.approx(result.embedding, abs=1e-5)
    (letter,) = read_dead_letters(output)
    assert (letter["stage"], letter["line"]) == ("inference", 2)
    assert letter["error"].startswith("TypeError: ")
    # Beam's coders cannot carry a dict holding a lone surrogate: the record comes back as
    # its escaped JSON, from which json.loads restores it exactly.
    assert "record" not in letter
    assert json.loads(letter["raw"]) == json.loads(LONE_SURROGATE_LINE)
    assert (summary.records_written, summary.dead_letters) == (2, 1)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread per forward pass: on a machine shared with other jobs, OpenMP
    teams of two spin-wait for descheduled partners and the test takes ten times longer.
    The four Python threads below still call the runtime concurrently."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_four_threads_sharing_one_runtime_equal_one_thread(prose_corpus, one_torch_thread):
    # The fault: Beam's multi_threading mode runs several DoFn threads over the one runtime
    # each process loads (Shared); Hugging Face fast tokenizers keep per-call settings on one
    # shared Rust object. Four threads start together on a fresh runtime and tokenize and
    # embed their shares in small calls, so their calls interleave many times. Texts are
    # cut to their first 24 words to keep the test short on a shared machine.
    texts = [" ".join(document["text"].split()[:24]) for document in prose_corpus]
    shared = load_runtime(load_endpoints().get("my-elser-model"))
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(thread: int) -> None:
        start.wait()
        try:
            for first in range(thread * 10, len(texts), 40):
                chunk = infer_texts(shared, texts[first : first + 10], max_batch_size=4)
                results.update(zip(range(first, first + 10), chunk))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    alone = infer_texts(load_runtime(load_endpoints().get("my-elser-model")), texts)
    assert sorted(results) == list(range(len(texts)))
    for position, expected in enumerate(alone):
        got = results[position]
        assert got.is_truncated == expected.is_truncated
        assert got.embedding == pytest.approx(expected.embedding, abs=1e-5), position
