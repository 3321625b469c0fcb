"""The ``enrich`` commands' argparse parsers: one helper every subcommand is made with, and the
flags generated from ``JobConfig``'s declaration (type, choices, help and default), so a
setting added to the config model gets its flag without an edit here."""

from __future__ import annotations

import argparse
import textwrap
import types
from typing import Iterable, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from inference_enrich.pipelines.config import SECTIONS, SETTINGS, JobConfig, flag


def add_command(commands: argparse._SubParsersAction, name: str, summary: str, description: str | None = None,
                epilog: str | None = None, preformatted: bool = False) -> argparse.ArgumentParser:
    """The parser of subcommand ``name``: ``summary`` is its line in ``enrich --help``;
    ``preformatted`` prints ``description`` and ``epilog`` with the line breaks they were
    written with. No flag may be abbreviated: ``enrich run`` hands what is not its own to Beam,
    where ``--out`` must not silently mean ``--output``."""
    return commands.add_parser(
        name, help=summary, description=description, epilog=epilog, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter if preformatted else argparse.HelpFormatter,
    )


def add_job_settings(run: argparse.ArgumentParser) -> None:
    """One flag per JobConfig setting, grouped by config-file section; secrets get none."""
    for section in SECTIONS:
        names = [name for name, setting in SETTINGS.items() if setting.section == section]
        renamed = [f"{flag(name)} is {SETTINGS[name].key}" for name in names if SETTINGS[name].key]
        file_only = [name for name in names if SETTINGS[name].secret]
        about = (f"Config file section '{section}:', keys as the flags with underscores"
                 + (f" ({'; '.join(renamed)})" if renamed else "") + "."
                 + (f" Config file only (secrets stay off command lines): {', '.join(file_only)}."
                    if file_only else ""))
        group = run.add_argument_group(f"{section} settings", textwrap.fill(about, 78))
        add_setting_flags(group, [name for name in names if name not in file_only])


def add_setting_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      names: Iterable[str]) -> None:
    """``--kebab-name`` (and ``--snake_name``) for each JobConfig field in ``names``: help from
    its description and default, the value's type or choices from its annotation. A flag not
    given leaves no attribute (``SUPPRESS``), so the config file's value stands."""
    for name in names:
        field = JobConfig.model_fields[name]
        value_type = _without_none(field.annotation)
        options = [flag(name)] + ([f"--{name}"] if "_" in name and value_type is not bool else [])
        kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": _flag_help(field)}
        if value_type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction  # --x and --no-x
        else:
            if get_origin(value_type) is list:
                kwargs["action"] = "append"
                value_type = get_args(value_type)[0]
            if get_origin(value_type) is Literal:
                kwargs["metavar"] = "{" + ",".join(get_args(value_type)) + "}"
            else:
                kwargs["metavar"] = SETTINGS[name].metavar or name.upper()
            if value_type in (int, float):
                kwargs["type"] = value_type
        parser.add_argument(*options, **kwargs)


def given_settings(args: argparse.Namespace, names: Iterable[str] = SETTINGS) -> dict:
    """The JobConfig settings among ``names`` given as flags (flags not given leave no attribute)."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def _without_none(annotation: object) -> object:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    return annotation


def _flag_help(field: FieldInfo) -> str:
    text = field.description or ""
    if field.default is not None and field.default_factory is None and "(default" not in text:
        shown = str(field.default).lower() if isinstance(field.default, bool) else field.default
        text += f" (default: {shown})"
    return text.replace("%", "%%")
