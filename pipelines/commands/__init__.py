"""The ``enrich`` subcommands run, search, infer and endpoints, a module each: its parser
(``add_*_command``) and what it does. ``serve`` lives in ``server/cli.py`` and ``eval`` in
``pipelines/eval/``; ``pipelines/cli.py`` parses, dispatches and maps errors to exit statuses."""
