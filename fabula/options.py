"""Command-line options made from the settings models: a setting's type, default and help are
said once, in fabula/config.py, and `--help` cannot drift from them."""

from __future__ import annotations

import functools
import inspect
import types
from typing import Literal, Optional, Union, get_args, get_origin

import typer
from rich.markup import escape


def options(model, *fields: str, flags: dict | None = None, commas: tuple[str, ...] = ()):
    """Decorate a command with one option per field of the pydantic `model`, so that a setting's
    type, default and help are said once, in the model, and the help cannot drift from it.

    Typer reads a command's options from its signature; this extends `__signature__` by the
    fields, typed from the field's type, helped by its `description` plus `(default: <the
    model's default>)`. Each option is None when not given, so it overrides neither a config
    file nor a preset; the command gets those given as `**settings`, shaped for the model (a
    field `training.lr` of a nested model arrives as {"training": {"lr": ...}}). `flags` names
    an option otherwise than --field-name (`{"families": "--family"}`); a list field in `commas`
    takes one comma-separated value (--arms a,b), other lists repeat the option."""
    flags = flags or {}

    def decorate(command):
        @functools.wraps(command)
        def with_settings(*args, **kwargs):
            settings: dict = {}
            for path in fields:
                value = kwargs.pop(path.rpartition(".")[2])
                if path in commas and value is not None:
                    value = [item.strip() for item in value.split(",") if item.strip()]
                if value not in (None, [], ()):
                    *parents, name = path.split(".")
                    functools.reduce(lambda table, key: table.setdefault(key, {}), parents, settings)[name] = value
            return command(*args, **kwargs, **settings)

        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        added = [_parameter(model, path, flags, path in commas) for path in fields]
        with_settings.__signature__ = signature.replace(parameters=own + added)
        return with_settings
    return decorate


def option_help(model, path: str, flags: dict | None = None, comma: bool = False) -> str:
    """A field's description, then its choices or how a list is given, and the model's default
    (none shown for None, whose meaning the description says)."""
    field = _field(model, path)
    kind, default = _without_none(field.annotation), field.default
    notes = [" | ".join(get_args(kind))] if get_origin(kind) is Literal else []
    if get_origin(kind) is list:
        notes.append("comma-separated" if comma else "repeatable")
    if field.is_required():
        notes.append("required")
    elif isinstance(default, bool):  # the flag that is on by default: --twins, --no-think
        notes.append("default: " + _decls(path, flags or {}, field)[0].split("/")[0 if default else 1])
    elif isinstance(default, list):
        notes.append(f"default: {','.join(map(str, default)) or 'none'}")
    elif default is not None:
        notes.append(f"default: {default}")
    return f"{field.description} ({'; '.join(notes)})" if notes else field.description


def flag(path: str, flags: dict) -> str:
    """The option that sets a field, for error messages: `--family` for families."""
    return _names(path, flags)[0]


def _parameter(model, path: str, flags: dict, comma: bool) -> inspect.Parameter:
    """The keyword parameter typer turns into the option for one field."""
    field = _field(model, path)
    option = typer.Option(None, *_decls(path, flags, field), help=escape(option_help(model, path, flags, comma)))
    return inspect.Parameter(path.rpartition(".")[2], inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=Optional[_option_type(field.annotation, comma)])


def _field(model, path: str):
    *parents, name = path.split(".")
    for parent in parents:
        model = model.model_fields[parent].annotation
    return model.model_fields[name]


def _names(path: str, flags: dict) -> tuple[str, ...]:
    named = flags.get(path, f"--{path.rpartition('.')[2].replace('_', '-')}")
    return (named,) if isinstance(named, str) else tuple(named)


def _decls(path: str, flags: dict, field) -> tuple[str, ...]:
    if _without_none(field.annotation) is bool:  # --think/--no-think
        return tuple(f"{name}/--no-{name[2:]}" for name in _names(path, flags))
    return _names(path, flags)


def _without_none(annotation):
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    return annotation


def _option_type(annotation, comma: bool):
    """The type typer parses: a Literal as str (the model validates it, naming the choices)."""
    kind = _without_none(annotation)
    if get_origin(kind) is list:
        return str if comma else list[_option_type(get_args(kind)[0], False)]
    return str if get_origin(kind) is Literal else kind
