"""BERT encoders run by our own forward pass on plain torch, without ``transformers``.

Why: importing ``transformers`` and its BERT modelling code costs ~3 CPU seconds (it pulls
``torch._dynamo``, ``torch.distributed.tensor``, ...), more than the first answer of
``enrich infer`` is allowed to take in total; and a forward pass of our own can work on the
real tokens of a batch only (no padding rows in the dense layers).

* ``support.py`` decides from ``config.json`` and the weight file whether a model directory
  is one we implement (otherwise the caller falls back to ``transformers``);
* ``tokenizer.py`` reads ``tokenizer.json`` with the ``tokenizers`` package;
* ``weights.py`` reads ``model.safetensors`` (memory-mapped) into the tensors the forward
  pass needs;
* ``forward.py`` is the encoder itself (embeddings, N layers) and the masked-LM head
  transform.
"""
