"""``--scale NAME`` and ``--set NAME=VALUE``: the options of every command that reads a spec, added
and read here once (see cnnspec.spec.parameters for what they mean)."""
from __future__ import annotations


def add_spec_choice(parser) -> None:
    """Add ``--scale`` and ``--set`` to a command that reads a spec."""
    parser.add_argument("--scale", metavar="NAME", default=None,
                        help="pick one of the spec's 'scales' (named parameter values)")
    parser.add_argument("--set", metavar="NAME=VALUE", action="append", dest="set_params", default=None,
                        help="set one of the spec's 'params' (VALUE read as YAML: a number, true/false or a "
                             "string); repeatable, applied after --scale")


def spec_choice(args):
    """The :class:`cnnspec.spec.parameters.Choice` the options give (usage errors for a malformed --set)."""
    from ..spec.parameters import Choice, parse_set

    sets = tuple(parse_set(text) for text in (getattr(args, "set_params", None) or ()))
    return Choice(getattr(args, "scale", None), sets)
