"""Refuse command-line arguments that neither ``enrich run`` nor Beam knows.

``enrich run`` passes the arguments it does not define to Beam as pipeline options. Beam
itself only warns about one it does not know ("Discarding unparseable args") and runs on,
so a typo such as ``--text-feild body`` ran the job with the setting at its default. Here
such an argument is a usage error that suggests the closest known flag.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser


class _CheckingParser(_BeamArgumentParser):
    """Raises on a bad value instead of printing Beam's own usage and exiting."""

    def error(self, message: str):
        raise ValueError(message)


def _beam_parser() -> _BeamArgumentParser:
    """A parser of every pipeline option Beam (and any imported subclass) defines, as
    ``PipelineOptions.get_all_options`` builds it."""
    parser = _CheckingParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def unknown_beam_arguments(beam_args: Sequence[str]) -> list[str]:
    """The arguments among ``beam_args`` that no Beam pipeline option takes."""
    _, unknown = _beam_parser().parse_known_args(list(beam_args))
    return unknown


def beam_flags() -> list[str]:
    """Every ``--flag`` of Beam's pipeline options."""
    return [option for action in _beam_parser()._actions for option in action.option_strings
            if option.startswith("--")]


def unknown_argument_problem(beam_args: Sequence[str], own_flags: Iterable[str]) -> str | None:
    """One line about the first argument nobody takes (with the closest known flag), or None."""
    try:
        unknown = unknown_beam_arguments(beam_args)
    except ValueError as error:  # a Beam option with a bad value, e.g. --direct_num_workers=x
        return str(error)
    if not unknown:
        return None
    argument = unknown[0]
    if not argument.startswith("-"):
        return f"unexpected argument {argument}"
    name = argument.split("=", 1)[0]
    close = difflib.get_close_matches(name, [*own_flags, *beam_flags()], n=1, cutoff=0.75)
    return f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else "")
