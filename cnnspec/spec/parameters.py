"""A spec's own parameters: ``params:`` (defaults), ``scales:`` (named sets of values), and the
command line's choice (``--scale NAME``, then each ``--set NAME=VALUE``), resolved once into the
values that ``$name`` means in the spec's ``input`` and ``layers``.

An unknown scale or parameter on the command line is a usage error (exit 2) that lists the known
ones; a mistake in the file itself is a located diagnostic. The exported spec carries the resolved
values as its ``params`` and no ``scales``, so it re-checks with no option.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import Diagnostic, UsageError
from .loader import resolve_plain_scalar
from .suggestions import suggest


@dataclass(frozen=True)
class Choice:
    """What the command line chose: a scale's name and ``(name, value)`` settings applied after it."""

    scale: str | None = None
    sets: tuple = ()

    @property
    def empty(self) -> bool:
        return self.scale is None and not self.sets


NO_CHOICE = Choice()


def parse_set(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE read as a YAML scalar (a number, true/false, or a string)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--set takes NAME=VALUE (such as --set width=1.4), got '{text}'")
    value, problem = resolve_plain_scalar(raw.strip())
    if problem:
        raise UsageError(f"--set {text}: {problem}")
    return name, value


@dataclass(frozen=True)
class Resolved:
    values: dict            # name -> value, what '$name' means at the top level
    scale: str | None       # the chosen scale's name


def _known(names) -> str:
    names = list(names)
    return ", ".join(names) if names else "none"


def resolve(doc, choice: Choice = NO_CHOICE) -> tuple[Resolved, list[Diagnostic]]:
    """The spec's parameter values under ``choice``; raises UsageError for a choice the spec does not
    offer. Problems in the file (a scale naming no parameter) are diagnostics."""
    data = doc.data if isinstance(doc.data, dict) else {}
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    scales = data.get("scales") if isinstance(data.get("scales"), dict) else {}
    diags = []
    for scale_name, values in scales.items():
        if not isinstance(values, dict):
            continue  # the schema says what a scale must be
        for key in values:
            if key not in params:
                diags.append(Diagnostic(
                    f"scale '{scale_name}' sets '{key}', which is no parameter of this spec" +
                    (suggest(key, list(params)) or f" (its params: {_known(params)})"),
                    doc.loc(("scales", scale_name, key), key=True), rank=10))
    values = dict(params)
    if choice.scale is not None:
        if choice.scale not in scales:
            where = f"its scales: {_known(scales)}" if scales else "it has no 'scales'"
            raise UsageError(f"{doc.file}: --scale {choice.scale}: no such scale ({where})"
                             + suggest(choice.scale, list(scales)))
        chosen = scales[choice.scale]
        if isinstance(chosen, dict):
            values.update({k: v for k, v in chosen.items() if k in params})
    for name, value in choice.sets:
        if name not in params:
            where = f"its params: {_known(params)}" if params else "it has no 'params'"
            raise UsageError(f"{doc.file}: --set {name}: no such parameter ({where})" + suggest(name, list(params)))
        values[name] = value
    diags += _derive(values, doc, choice)
    return Resolved(values, choice.scale), diags


def _derive(values: dict, doc, choice: Choice) -> list[Diagnostic]:
    """Values that are expressions over the parameters before them (``stem: make_divisible(32 * $width)``),
    evaluated in order, in place; a mistake is located where the value is written."""
    from .expressions import ExpressionError, evaluate, is_expression

    diags, done = [], {}
    for name, value in list(values.items()):
        if is_expression(value):
            try:
                values[name] = evaluate(value, done)
            except ExpressionError as exc:
                set_here = name in dict(choice.sets)
                if set_here:
                    raise UsageError(f"--set {name}={value}: {exc}") from None
                chosen = choice.scale is not None and name in (doc.data.get("scales", {}).get(choice.scale) or {})
                path = ("scales", choice.scale, name) if chosen else ("params", name)
                hint = " (a parameter's value may use only the parameters before it)" if "not a parameter" in str(exc) else ""
                diags.append(Diagnostic(f"params: '{name}: {value}': {exc}{hint}", doc.loc(path), rank=10))
                values[name] = None
        done[name] = values[name]
    return diags


def resolved_data(data: dict, resolved: Resolved) -> dict:
    """The spec as an exported model carries it: ``params`` holding the chosen values, no ``scales``."""
    if not isinstance(data, dict) or ("params" not in data and "scales" not in data):
        return data
    out = {k: v for k, v in data.items() if k != "scales"}
    if "params" in data:
        out["params"] = {k: _plain(v) for k, v in resolved.values.items()}
    return out


def _plain(value):
    return float(value) if isinstance(value, float) else value
