"""The one place that publishes a run's staged output:

- ``output_dir``: what an output directory holds (entries, ``_SUCCESS``, lock file), read
  in one place (Beam-free);
- ``publish``: ``publish_output`` (plan, moves, ``_SUCCESS``), staging clean-up, streaming
  runs' ``_SUCCESS``, releasing the lock;
- ``accounting``: whether a finished run may publish (records accounted for, dead letters;
  Beam-free);
- ``write_and_publish``: the pipeline steps that publish (``WriteAndPublish`` for the public
  writers, ``PublishOutput`` for ``enrich run --publish pipeline``).

``pipelines/enrich.py`` (the launcher), ``pipelines/output_guard.py`` (save modes, the lock)
and the public writers all read and publish the output directory through it.
"""
