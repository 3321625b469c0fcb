"""``enrich eval DIR``: measure retrieval on a BEIR directory with our own enrichment.

    DIR/corpus.jsonl     {"_id", "title"?, "text"} per line
    DIR/queries.jsonl    {"_id", "text"} per line
    DIR/qrels/test.tsv   a header line, then query-id <TAB> corpus-id <TAB> score

The corpus is enriched by the real job (``run_job``) into one index per endpoint (the
sparse one, and the dense one when ``dense`` is asked for), each document's text being its
title and text; the index is kept and reused by the next eval of the same corpus with the
same endpoint (the embedded index under ``--cache-dir``, Elasticsearch/OpenSearch as index
``enrich-eval-<key>``). Each method then answers every judged query with its top 100:

    bm25     the index's BM25 over the text (the engine's own; bm25s in the embedded index)
    sparse   the sparse endpoint's search
    dense    the dense endpoint's kNN search
    hybrid   bm25 and sparse fused by reciprocal rank fusion (rank_constant 60, window 100);
             with dense among the methods, bm25, sparse and dense fused

Metrics are ir-measures' (trec_eval's) nDCG@10, RR@10 (MRR@10) and R@100, averaged over every
judged query (a query a method finds nothing for scores 0), and queries per second.

Modules: ``beir`` reads the directory, ``corpus_index`` builds (or reuses) the enriched index,
``methods`` runs and scores each method, ``command`` is the ``enrich eval`` command.
"""
