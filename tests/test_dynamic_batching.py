"""Which texts share a forward pass in `enrich serve` (server/scheduler.py, server/model_worker.py).

Many concurrent requests to one model are pooled; each pass takes the oldest pooled text
and the texts nearest its length that arrived soon after it. Tested here: the choice
itself (pure, on hand-made pools) and a real ModelWorker on the packaged MiniLM, whose
passes must pad little and whose answers must equal the model's one text at a time.
"""

from __future__ import annotations

import contextlib
import random
import threading
from concurrent.futures import CancelledError

from inference_enrich.inference import TokenizedText
from inference_enrich.server import scheduler
from inference_enrich.server.batch_policy import BatchPolicy
from inference_enrich.server.model_worker import ModelWorker
from inference_enrich.server.pending import Job, Text
from inference_enrich.server.worker import Outcome

WORDS = ("harbour lantern quietly measured the northern river while seven grey herons "
         "watched an old ferry drift past warehouses of brick and cedar").split()


def pool(*texts: tuple[int, float]) -> list:
    """Pending texts of the given (token length, arrival time), in arrival order."""
    pending = []
    for length, arrived in texts:
        job = Job([f"text of {length} tokens"])
        job.arrived = arrived
        job.tokenized = [TokenizedText(ids=[7] * length, is_truncated=False)]
        pending.append(Text(job, 0))
    return pending


def lengths(texts: list) -> list[int]:
    return [len(text.tokenized.ids) for text in texts]


def test_a_pass_takes_the_oldest_text_and_the_texts_nearest_its_length():
    pending = pool((200, 0.0), (10, 0.01), (190, 0.02), (12, 0.03), (195, 0.04), (60, 0.05))
    policy = BatchPolicy(max_batch_tokens=600, max_batch_size=64, reorder_window_s=1.0)

    first = scheduler.next_batch(pending, policy)

    assert sorted(lengths(first)) == [190, 195, 200]  # 3 x 200 = 600 fits; a fourth would not
    assert lengths(pending) == [10, 12, 60]  # the rest stays, in arrival order
    assert sorted(lengths(scheduler.next_batch(pending, policy))) == [10, 12, 60]
    assert pending == []


def test_the_batch_size_limits_a_pass_too():
    pending = pool(*[(8, i * 0.001) for i in range(10)])
    passes = []
    while pending:
        passes.append(len(scheduler.next_batch(pending, BatchPolicy(max_batch_size=4))))
    assert passes == [4, 4, 2]


def test_a_text_longer_than_the_budget_gets_a_pass_of_its_own():
    pending = pool((900, 0.0), (850, 0.01))
    policy = BatchPolicy(max_batch_tokens=512, reorder_window_s=1.0)
    assert lengths(scheduler.next_batch(pending, policy)) == [900]
    assert lengths(scheduler.next_batch(pending, policy)) == [850]


def test_texts_arriving_after_the_reorder_window_do_not_join_the_oldest():
    pending = pool((100, 0.0), (100, 0.2), (100, 0.3), (100, 0.9))
    first = scheduler.next_batch(pending, BatchPolicy(max_batch_tokens=1024, reorder_window_s=0.25))
    assert [text.job.arrived for text in first] == [0.0, 0.2]
    assert [text.job.arrived for text in pending] == [0.3, 0.9]


def test_a_long_text_is_not_starved_by_a_stream_of_short_newcomers():
    """Short texts keep arriving and would make the cheapest passes forever; the long one
    waiting first is taken by the very next pass all the same."""
    pending = pool((400, 0.0), *[(10, 0.001 * i) for i in range(1, 40)])
    first = scheduler.next_batch(pending, BatchPolicy(max_batch_tokens=1024, reorder_window_s=10.0))
    assert 400 in lengths(first)


def test_every_text_is_taken_exactly_once():
    rng = random.Random(7)
    pending = pool(*[(rng.randint(3, 256), i * 0.01) for i in range(300)])
    originals = list(pending)
    taken: list = []
    policy = BatchPolicy()
    while pending:
        batch = scheduler.next_batch(pending, policy)
        assert batch and (len(batch) == 1 or len(batch) * max(lengths(batch)) <= policy.max_batch_tokens)
        taken.extend(batch)
    assert sorted(map(id, taken)) == sorted(map(id, originals))


def run_worker(endpoint, policy: BatchPolicy, requests: list[list[str]], after_pass=None):
    """Queue ``requests`` behind the model's loading (so they meet in the pool, as they would
    behind a busy pass), then wait for every answer. ``after_pass(futures, passes)`` runs
    on the worker's thread after each pass, before its answers are given. Returns (futures,
    passes): each pass as (documents, padded tokens)."""
    passes: list[tuple[int, int]] = []
    futures: list = []
    submitted = threading.Event()

    def observe(model_id, documents, padded, seconds):
        passes.append((documents, padded))
        if after_pass is not None:
            submitted.wait(120)
            after_pass(futures, passes)

    worker = ModelWorker(endpoint, policy, observe)
    try:
        loaded = worker.load()
        futures.extend(worker.submit(texts) for texts in requests)
        submitted.set()
        loaded.result(timeout=120)
        for future in futures:
            with contextlib.suppress(CancelledError):  # withdrawn, before or while waiting
                future.exception(timeout=120)
    finally:
        worker.close()
        worker.join(30)
    return futures, passes


def test_queued_requests_are_pooled_so_passes_pad_little_and_answers_stay_exact(endpoints, dense_runtime):
    """48 single-text requests of 3 to ~200 tokens queue while the model loads (as they
    would behind a busy pass): the worker must pool them and pass texts of like length
    together. Taking them in arrival order, one pass's worth at a time, padded 1.40x the
    real tokens in this test (measured on the old worker)."""
    rng = random.Random(11)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 180))) for _ in range(48)]
    futures, passes = run_worker(endpoints.get("my-minilm"), BatchPolicy(max_batch_tokens=1024),
                                 [[text] for text in texts] + [[]])
    outcomes = [future.result() for future in futures[:-1]]
    assert futures[-1].result() == Outcome([], 0)  # no texts: answered, not left hanging

    real_tokens = sum(outcome.tokens for outcome in outcomes)
    padded_tokens = sum(padded for _, padded in passes)
    assert sum(documents for documents, _ in passes) == len(texts)
    assert len(passes) <= len(texts) // 4  # texts share passes (one text per pass pads nothing)
    # Texts are tokenised off the model thread now, so which of them are pooled when a pass
    # is chosen depends on the tokenizer pool's timing: 1.25x held in most runs, 1.2505x was
    # seen once; arrival order alone gave 1.40x.
    assert padded_tokens <= 1.3 * real_tokens, (padded_tokens, real_tokens, passes)
    alone = [dense_runtime.embed(dense_runtime.tokenize([text]))[0].embedding for text in texts]
    for outcome, expected in zip(outcomes, alone, strict=True):
        (result,) = outcome.results
        assert max(abs(a - b) for a, b in zip(result.embedding, expected, strict=True)) < 1e-5


def test_a_request_withdrawn_while_pooled_is_never_computed(endpoints):
    """A caller that times out cancels its future; while none of its texts has gone into a
    pass, the work is dropped (the old worker marked every pooled job running, so a
    timed-out request was computed all the same)."""
    withdrawn: list[bool] = []

    def withdraw_the_last_request_once(futures, passes):
        if not withdrawn:
            withdrawn.append(futures[-1].cancel())

    requests = [[f"request {i}: " + "the harbour lantern " * 20] for i in range(6)] + [["withdrawn text"]]
    # A window of 0: no two requests share a pass, and passes go in arrival order, so the
    # last request is still pooled when the first pass ends.
    futures, passes = run_worker(endpoints.get("my-minilm"), BatchPolicy(reorder_window_s=0.0), requests,
                                 withdraw_the_last_request_once)
    assert withdrawn == [True], "the last request was already being computed"
    assert futures[-1].cancelled()
    assert all(len(future.result().results) == 1 for future in futures[:-1])
    assert sum(documents for documents, _ in passes) == 6


def test_a_request_withdrawn_as_its_pass_is_chosen_does_not_stop_the_worker(endpoints, monkeypatch):
    """A caller can cancel between the worker's choice of a pass and the start of its
    computation. A two-text request cancelled right there once killed the worker thread
    (its second text asked the cancelled future to start a second time), after which the
    model answered nothing. The moment is too narrow to hit from outside, so the test
    cancels from inside ``next_batch``: a wrapper around the real one (the only stand-in
    here; the model, the worker and the futures are real)."""
    choose = scheduler.next_batch
    cancelled: list[bool] = []

    def choose_then_cancel_the_first_request(pending, policy):
        batch = choose(pending, policy)
        if not cancelled:
            cancelled.append(batch[0].job.future.cancel())
        return batch

    monkeypatch.setattr(scheduler, "next_batch", choose_then_cancel_the_first_request)
    futures, passes = run_worker(endpoints.get("my-minilm"), BatchPolicy(reorder_window_s=0.0),
                                 [["first of two", "second of two"], ["answered all the same"]])
    assert cancelled == [True] and futures[0].cancelled()
    assert len(futures[1].result(timeout=0).results) == 1
    assert passes == [(1, futures[1].result().tokens)]


def test_an_unexpected_error_choosing_a_pass_fails_the_pooled_requests_and_the_worker_goes_on(
        endpoints, monkeypatch):
    """Choosing a pass is pure code, so only a bug could make it raise; if one does, the
    requests in the pool get the error and the model keeps answering (the worker thread
    used to die, and every later request to the model timed out). The bug is injected by
    a wrapper around the real ``next_batch``: a fault the real code cannot be made to have."""
    choose = scheduler.next_batch
    injected: list[bool] = []

    def fail_the_first_choice(pending, policy):
        if not injected:
            injected.append(True)
            raise RuntimeError("injected: a bug in choosing a pass")
        return choose(pending, policy)

    monkeypatch.setattr(scheduler, "next_batch", fail_the_first_choice)
    worker = ModelWorker(endpoints.get("my-minilm"), BatchPolicy(), lambda *observed: None)
    try:
        loaded = worker.load()
        pooled = worker.submit(["first of two", "second of two"])
        loaded.result(timeout=120)
        assert "injected" in str(pooled.exception(timeout=120))
        later = worker.submit(["asked after the failure"])
        assert len(later.result(timeout=120).results) == 1
    finally:
        worker.close()
        worker.join(30)


def test_a_request_the_tokenizer_refuses_fails_alone(endpoints):
    """A lone UTF-16 surrogate (valid JSON: "\\ud800") makes the tokenizer raise: that request
    gets the error, the requests pooled with it are answered."""
    futures, passes = run_worker(endpoints.get("my-minilm"), BatchPolicy(),
                                 [["before"], ["bad \ud800 text"], ["after"]])
    assert futures[1].exception() is not None
    assert [len(futures[i].result().results) for i in (0, 2)] == [1, 1]
    assert sum(documents for documents, _ in passes) == 2


def test_the_pool_is_full_at_its_size_in_texts_or_in_tokens():
    policy = BatchPolicy(max_batch_tokens=100, max_batch_size=4, pool_batches=2)
    assert not policy.pool_is_full(texts=7, tokens=199)
    assert policy.pool_is_full(texts=8, tokens=0)
    assert policy.pool_is_full(texts=1, tokens=200)


def test_requests_beyond_the_pool_wait_in_the_queue(endpoints):
    """The pool holds pool_batches x max_batch_size texts; a request with more texts still
    goes in whole, and nothing else joins until the pool is below its size again. Here
    the pool (2 texts) holds only the first request (4 texts): its passes are (152, 222)
    and (32, 42) tokens, and the second request (37 tokens) gets the third. Had it joined
    early it would have shared the 32-token text's pass: (32, 37), then (42)."""
    first = ["the " * 150, "the " * 30, "the " * 220, "the " * 40]
    second = ["the " * 35]
    policy = BatchPolicy(max_batch_tokens=4096, max_batch_size=2, reorder_window_s=10.0, pool_batches=1)

    futures, passes = run_worker(endpoints.get("my-minilm"), policy, [first, second])

    assert [future.result().tokens for future in futures] == [152 + 32 + 222 + 42, 37]
    assert passes == [(2, 2 * 222), (2, 2 * 42), (1, 37)]


def test_closing_answers_every_request_already_pooled_or_queued(endpoints):
    """SIGTERM closes the workers after the last requests came in: everything queued before
    the stop signal, pooled or not, is answered before the thread ends."""
    worker = ModelWorker(endpoints.get("my-minilm"), BatchPolicy(reorder_window_s=0.0), lambda *observed: None)
    loaded = worker.load()
    futures = [worker.submit([f"request {i} " * (i + 1)]) for i in range(5)]
    worker.close()  # queued behind the requests, while the model still loads
    loaded.result(timeout=120)
    worker.join(120)
    assert [len(future.result(timeout=0).results) for future in futures] == [1] * 5


def test_a_request_withdrawn_while_queued_is_skipped(endpoints):
    passes: list[tuple[int, int]] = []
    worker = ModelWorker(endpoints.get("my-minilm"), BatchPolicy(),
                         lambda model_id, documents, padded, seconds: passes.append((documents, padded)))
    try:
        loaded = worker.load()
        withdrawn, kept = worker.submit(["withdrawn"]), worker.submit(["kept"])
        assert withdrawn.cancel()  # still queued: the model takes a while to load
        loaded.result(timeout=120)
        assert len(kept.result(timeout=120).results) == 1
    finally:
        worker.close()
        worker.join(30)
    assert passes == [(1, kept.result().tokens)]
