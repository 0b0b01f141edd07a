"""Suggestions ("did you mean ...?") only for a near spelling of a known name.

A suggestion that names a different thing misleads more than none at all (``gelu`` is not a
typo of ``relu``, nor ``conv1d`` of ``conv2d``), so the rule is strict: a small typo distance
(Damerau-Levenshtein, a swap of two neighbours counting one), a matching first letter and no
letter replaced for short words (``selu`` is not a typo of ``silu``), and no aligned part of the
name replaced whole (``max``/``avg``, ``1``/``2``).
"""
from __future__ import annotations

import re

SHORT = 6  # words shorter than this allow one edit; longer ones two
_TOKENS = re.compile(r"[a-z]+|[0-9]+")


def typo_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap neighbours) from a to b: optimal string alignment."""
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def _replaces_a_whole_part(a: str, b: str) -> bool:
    """True where an aligned part differs in full: a number (conv1d/conv2d, conv2d_9/conv2d_1) or
    a word whose every letter changed (max_pool/avg_pool). Parts are runs of letters or digits."""
    digits_a, digits_b = re.findall(r"[0-9]+", a), re.findall(r"[0-9]+", b)
    if any(x != y for x, y in zip(digits_a, digits_b)):
        return True
    parts_a, parts_b = _TOKENS.findall(a), _TOKENS.findall(b)
    if len(parts_a) != len(parts_b):
        return False
    return any(x != y and typo_distance(x, y) >= max(len(x), len(y)) for x, y in zip(parts_a, parts_b))


def _one_letter_replaced(a: str, b: str) -> bool:
    """Equal lengths, one position differs: in a short word that is another word (selu, silu), where a
    typo swaps, drops or doubles a letter."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def is_near(word: str, option: str) -> bool:
    """Whether ``option`` is a plausible intended spelling of ``word`` (case ignored)."""
    a, b = word.lower(), option.lower()
    if not a or not b:
        return False
    if len(a) < SHORT and (a[0] != b[0] or _one_letter_replaced(a, b)):
        return False
    limit = 1 if len(a) < SHORT else 2
    return typo_distance(a, b) <= limit and not _replaces_a_whole_part(a, b)


# Other frameworks' names for cnnspec's ops (PyTorch's torch.nn classes, Keras' layers, ONNX's operators),
# compared as ``spelled`` does: a name spelled as another framework spells it is told the op by name, which
# no typo distance would find (conv_transpose2d is four edits from conv2d_transpose).
ALIASES = {
    "convtranspose2d": ("conv2d_transpose", "PyTorch's"), "conv2dtranspose": ("conv2d_transpose", "Keras'"),
    "convtranspose": ("conv2d_transpose", "ONNX's"), "deconv2d": ("conv2d_transpose", "a common"),
    "separableconv2d": ("separable_conv2d", "Keras'"), "separableconvolution2d": ("separable_conv2d", "Keras'"),
    "depthwiseconv2d": ("conv2d", "Keras'", "here a conv2d with groups equal to its input channels"),
    "conv": ("conv2d", "ONNX's"), "convolution2d": ("conv2d", "Keras'"),
    "batchnorm2d": ("batchnorm", "PyTorch's"), "batchnormalization": ("batchnorm", "Keras' and ONNX's"),
    "layernormalization": ("layernorm", "Keras'"), "groupnorm": None,
    "maxpooling2d": ("maxpool2d", "Keras'"), "maxpool": ("maxpool2d", "ONNX's"),
    "averagepooling2d": ("avgpool2d", "Keras'"), "averagepool": ("avgpool2d", "ONNX's"),
    "globalaveragepooling2d": ("global_avgpool2d", "Keras'"), "globalaveragepool": ("global_avgpool2d", "ONNX's"),
    "adaptiveavgpool2d": ("global_avgpool2d", "PyTorch's", "with output size 1"),
    "globalmaxpooling2d": ("global_maxpool2d", "Keras'"), "globalmaxpool": ("global_maxpool2d", "ONNX's"),
    "adaptivemaxpool2d": ("global_maxpool2d", "PyTorch's", "with output size 1"),
    "linear": ("dense", "PyTorch's"), "gemm": ("dense", "ONNX's"), "fullyconnected": ("dense", "a common"),
    "concatenate": ("concat", "Keras'"), "cat": ("concat", "PyTorch's"), "mul": ("multiply", "ONNX's"),
    "upsampling2d": ("upsample2d", "Keras'"), "upsample": ("upsample2d", "PyTorch's"),
    "zeropadding2d": ("zeropad2d", "Keras'"), "cropping2d": ("crop2d", "Keras'"),
    "hardsigmoid": ("hard_sigmoid", "PyTorch's"), "hardswish": ("hard_swish", "PyTorch's"),
}
ALIASES = {k: v for k, v in ALIASES.items() if v is not None}


def spelled(word: str) -> str:
    """A name as aliases compare it: the last dotted part (``nn.Linear``), no case, no '_' or '-'."""
    return word.rsplit(".", 1)[-1].lower().replace("_", "").replace("-", "")


def alias_of(word, options) -> tuple | None:
    """(option, whose name it is[, a note]) where ``word`` is another framework's name for an option, or the option
    spelled with other case or underscores (``MaxPool2d``, ``Conv2D``); None otherwise."""
    if not isinstance(word, str) or not word:
        return None
    key = spelled(word)
    known = [o for o in options if isinstance(o, str)]
    if key in ALIASES and ALIASES[key][0] in known and ALIASES[key][0] != word:
        return ALIASES[key]
    same = [o for o in known if o != word and spelled(o) == key]
    return (same[0], None) if same else None


def close_match(word, options) -> str | None:
    """The option another framework's name or another spelling names, else the nearest option that
    ``is_near`` the word (first listed on a tie), or None."""
    if not isinstance(word, str):
        return None
    options = list(options)
    alias = alias_of(word, options)
    if alias:
        return alias[0]
    near = [o for o in options if isinstance(o, str) and o != word and is_near(word, o)]
    return min(near, key=lambda o: typo_distance(word.lower(), o.lower()), default=None)


def suggest(word, options) -> str:
    """'; did you mean 'x'?' for a near spelling or another framework's name (said whose), else an empty
    string (for appending to a message)."""
    options = list(options)
    alias = alias_of(word, options)
    if alias and alias[1]:
        note = f"; {alias[2]}" if len(alias) > 2 else ""
        return f"; did you mean '{alias[0]}'? ('{word}' is {alias[1]} name for it{note})"
    match = close_match(word, options)
    return f"; did you mean '{match}'?" if match else ""
