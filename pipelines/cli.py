"""The ``enrich`` command: parse, hand over to the subcommand, turn its errors into one line
and an exit status.

    enrich run [--config FILE] [--input URL] ... [Beam pipeline options]
    enrich search QUERY [--index-path DIR | --es-url URL] ...
    enrich infer [sparse_embedding] my-elser-model "The sky above the port ..."
    enrich endpoints
    enrich serve [--host 127.0.0.1] [--port 9200] [--endpoints FILE]
    enrich eval DIR [--methods bm25,sparse,hybrid]

Each subcommand is a module of its own (``pipelines/commands/``, ``server/cli.py``,
``pipelines/eval/command.py``) that imports Beam or torch only when it runs.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import logging
import os
import sys
from typing import NoReturn, Sequence

from inference_enrich import __version__
from inference_enrich.inference import InferenceEnrichError
from inference_enrich.indexes.base import IndexUnreachable
from inference_enrich.transforms.kafka import LIBRDKAFKA_LOGGER, KafkaUnreachable
from inference_enrich.pipelines.process_exit import run_and_exit
from inference_enrich.pipelines.beam_noise import silence_beam_noise
from inference_enrich.pipelines.cli_options import add_command
from inference_enrich.pipelines.commands.endpoints import add_endpoints_command, run_endpoints
from inference_enrich.pipelines.commands.infer import add_infer_command, run_infer
from inference_enrich.pipelines.commands.run import add_run_command, launch_job
from inference_enrich.pipelines.commands.search import add_search_command, run_search
from inference_enrich.pipelines.errors import JobFailed
from inference_enrich.pipelines.eval.command import add_eval_command, run_eval
from inference_enrich.server.cli import (
    SERVE_DESCRIPTION,
    SERVE_EPILOG,
    SERVE_SUMMARY,
    add_serve_options,
    run_serve,
)

EXIT_RUN_FAILED = 1  # nothing published; the previous output is untouched
EXIT_USAGE = 2  # bad flags, config or endpoint
EXIT_READER_GONE = 128 + 13  # stdout's reader went away (`| head`): as a shell reports SIGPIPE


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The subparser of ``command`` (``run`` reports its own usage errors)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def _unknown_arguments(arguments: Sequence[str], command: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments", with the closest of the command's flags to a
    mistyped one (run's flags and Beam's are checked by ``flag_check``)."""
    flags = [option for action in command._actions for option in action.option_strings]
    hints = [close[0] for argument in arguments if argument.startswith("--")
             for close in [difflib.get_close_matches(argument.split("=", 1)[0], flags, n=1, cutoff=0.75)] if close]
    return f"unrecognized arguments: {' '.join(arguments)}" + (f" (did you mean {hints[0]}?)" if hints else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enrich",
        description="Elasticsearch-style inference (sparse and dense embeddings) for whole "
        "corpora, as an Apache Beam job.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_command(commands)
    add_search_command(commands)
    add_infer_command(commands)
    add_endpoints_command(commands)
    add_serve_options(add_command(commands, "serve", SERVE_SUMMARY, SERVE_DESCRIPTION, SERVE_EPILOG,
                                  preformatted=True))
    add_eval_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _flush_each_line()
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and args.command != "run":
        _command_parser(parser, args.command).error(_unknown_arguments(beam_args, _command_parser(parser, args.command)))
    try:
        if args.command == "run":
            _configure_logging(quiet=args.quiet)
            return launch_job(args, beam_args, _command_parser(parser, "run"))
        if args.command == "infer":
            return run_infer(args)
        if args.command == "search":
            _configure_logging(quiet=True)
            return run_search(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "eval":
            _configure_logging(quiet=True)
            return run_eval(args)
        return run_endpoints(args)
    except BrokenPipeError:  # `enrich ... | head`: the reader has what it wanted
        return _reader_went_away()
    # Before OSError's clause: a missing input (FileNotFoundError) is an OSError too.
    except (InferenceEnrichError, FileNotFoundError, ValueError) as error:
        print(f"enrich: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        if not _output_unwritable(error):
            raise
        print(f"enrich: error: cannot write the output: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except JobFailed as error:
        outcome = {False: "its output files were not published",
                   None: "the pipeline publishes its output itself (OUTPUT/_SUCCESS names the "
                         "last run that did)"}[error.published]
        print(f"enrich: error: the run failed, {outcome}: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except (IndexUnreachable, KafkaUnreachable) as error:  # before (run) or instead of (search) any work
        print(f"enrich: error: {error}", file=sys.stderr)
        return EXIT_RUN_FAILED


def _flush_each_line() -> None:
    """Write stdout line by line even into a pipe, so a reader that went away (``| head``) is
    noticed by the print that meets it, inside ``main``, and not by the flush at exit, which
    could only print a traceback."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def _output_unwritable(error: OSError) -> bool:
    """Whether ``error`` is stdout refusing a write (``> /dev/full``, a full disk or quota):
    a stream's write error names no file, unlike a file we open, and is no connection's."""
    return (error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)
            and error.filename is None and not isinstance(error, ConnectionError))


def _reader_went_away() -> int:
    """The reader of stdout closed it (``| head``): send the rest of the output to /dev/null,
    so the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_GONE


CLIENT_LOGGERS = ("elastic_transport", "opensearch")
"""The index clients log every retry as a warning with its traceback; what matters reaches the
user anyway, as one line (an unreachable cluster) or as the run's failure."""


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("inference_enrich").setLevel(logging.WARNING if quiet else logging.INFO)
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # librdkafka logs every failed connection attempt; the run's error says what matters.
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.CRITICAL)
    silence_beam_noise()


def entry() -> NoReturn:
    """The ``enrich`` console script: ``main``, then an exit that no native library thread can
    turn into an abort (see ``process_exit``)."""
    run_and_exit(main)


if __name__ == "__main__":
    entry()
