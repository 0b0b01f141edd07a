"""A restricted reader of the pickle inside a ``torch.save`` file: never ``pickle.load``.

:class:`Machine` walks the pickle's opcodes (``pickletools.genops``, a parser) with a stack of its
own. It knows the opcodes a state_dict uses and can call only :data:`CALLABLES`: an ``OrderedDict``
and PyTorch's tensor-rebuild functions, each mapped to a function of ours that builds a plain value
(a dict, a :class:`TensorRef` naming its storage, offset, shape and strides). Storage classes, dtypes
and tensor classes are inert :class:`Name` markers. Any other global (``os.system``,
``builtins.eval``, a pickled ``nn.Module``) is :class:`Refused` by name when the opcode naming it is
read: there is nothing else it could reach. PyTorch's own ``weights_only`` unpickler works the same
way; this one needs no PyTorch.
"""
from __future__ import annotations

import pickletools
from dataclasses import dataclass

# PyTorch's legacy storage classes and dtypes -> numpy dtypes ('bfloat16': widened to float32 on load)
STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
            "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
            "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1"}
DTYPES = {"float32": "<f4", "float": "<f4", "float64": "<f8", "double": "<f8", "float16": "<f2", "half": "<f2",
          "bfloat16": "bfloat16", "int64": "<i8", "long": "<i8", "int32": "<i4", "int": "<i4", "int16": "<i2",
          "int8": "i1", "uint8": "u1", "bool": "?"}
ITEMSIZE = {"<f4": 4, "<f8": 8, "<f2": 2, "bfloat16": 2, "<i8": 8, "<i4": 4, "<i2": 2, "i1": 1, "u1": 1, "?": 1}


@dataclass(frozen=True)
class Name:
    """A global the pickle named and we allow: a storage class, a dtype, a tensor class."""

    module: str
    name: str


@dataclass(frozen=True)
class StorageRef:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class TensorRef:
    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str


def _ints(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value) or len(value) > 8:
        raise Refused(f"a tensor's {what} is {short(value)}, not a short tuple of non-negative integers")
    return value


def _tensor(storage, offset, size, stride, *_rest, dtype=None):
    if not isinstance(storage, StorageRef) or type(offset) is not int or offset < 0:
        raise Refused("a tensor is rebuilt from something that is not a storage of the file")
    size, stride = _ints(size, "shape"), _ints(stride, "strides")
    if len(size) != len(stride):
        raise Refused(f"a tensor has shape {list(size)} but strides {list(stride)}")
    return TensorRef(storage, offset, size, stride, dtype or storage.dtype)


def _tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *_rest):
    if not isinstance(dtype, Name) or dtype.module != "torch" or dtype.name not in DTYPES:
        raise Refused(f"a tensor's dtype is {short(dtype)}")
    return _tensor(storage, offset, size, stride, dtype=DTYPES[dtype.name])


def _parameter(data, *_rest):
    if not isinstance(data, TensorRef):
        raise Refused("a parameter holds something that is not a tensor")
    return data


def _from_type(func, new_type, args, _state):
    if func not in (_tensor, _tensor_v3, _parameter) or new_type not in TENSOR_TYPES or not isinstance(args, tuple):
        raise Refused("a tensor subclass is rebuilt by something other than PyTorch's tensor functions")
    return func(*args)


def _ordered_dict(*args):
    if args:
        raise Refused("an OrderedDict is built from arguments")
    return {}


def _size(*args):
    return _ints(args[0] if args else (), "shape")


# (module, name) -> what a call to it builds; nothing else in a pickle can be called
CALLABLES = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("torch", "Size"): _size,
}
TENSOR_TYPES = {Name("torch", "Tensor"), Name("torch.nn.parameter", "Parameter")}


class Refused(Exception):
    """The pickle asks for something a state_dict does not need."""


class _Mark:
    pass


MARK = _Mark()


def _tuple_step(n: int):
    def step(machine, _arg):
        items = [machine.pop() for _ in range(n)][::-1]
        machine.push(tuple(items))
    return step


class Machine:
    """The pickle opcodes a state_dict uses, interpreted over plain Python values: dicts, lists,
    tuples, strings, numbers and the markers above. One table, opcode name -> step."""

    def __init__(self):
        self.stack: list = []
        self.memo: dict = {}

    def run(self, data: bytes):
        ops = 0
        for opcode, arg, _pos in pickletools.genops(data):
            ops += 1
            if opcode.name == "STOP":
                if len(self.stack) != 1:
                    raise Refused("the pickle ends with a broken stack")
                return self.stack.pop()
            step = self.STEPS.get(opcode.name)
            if step is None:
                raise Refused(f"the pickle uses the opcode {opcode.name}, which a state_dict does not need")
            step(self, arg)
        raise Refused("the pickle has no STOP")

    # -- stack helpers
    def pop(self):
        if not self.stack or self.stack[-1] is MARK:
            raise Refused("the pickle pops an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is MARK:
                items = self.stack[i + 1:]
                del self.stack[i:]
                return items
        raise Refused("the pickle has no MARK where one is needed")

    def push(self, value):
        self.stack.append(value)

    def top(self):
        if not self.stack or self.stack[-1] is MARK:
            raise Refused("the pickle reads an empty stack")
        return self.stack[-1]

    # -- steps
    def _global(self, arg):
        module, _, name = arg.partition(" ")
        self.push(self._name(module, name))

    def _stack_global(self, _arg):
        name, module = self.pop(), self.pop()
        if not (isinstance(module, str) and isinstance(name, str)):
            raise Refused("the pickle names a global with something that is not text")
        self.push(self._name(module, name))

    @staticmethod
    def _name(module: str, name: str):
        if (module, name) in CALLABLES:
            return CALLABLES[(module, name)]
        marker = Name(module, name)
        if (module == "torch" and (name in STORAGES or name in DTYPES)) or marker in TENSOR_TYPES:
            return marker
        raise Refused(f"the pickle calls '{module}.{name}', which is not a tensor, a storage or a dict")

    def _reduce(self, _arg):
        args, func = self.pop(), self.pop()
        if not callable(func) or func not in CALLABLES.values() or not isinstance(args, tuple):
            raise Refused(f"the pickle calls {short(func)}, which is not one of PyTorch's tensor functions")
        try:
            self.push(func(*args))
        except TypeError:
            raise Refused(f"the pickle calls {func.__name__} with {len(args)} arguments") from None

    def _persid(self, _arg):
        pid = self.pop()
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Refused(f"the pickle refers to {short(pid)}, which is not a storage of the file")
        _, kind, key, _location, count = pid
        if not (isinstance(kind, Name) and kind.name in STORAGES and isinstance(key, str) and type(count) is int
                and count >= 0):
            raise Refused(f"the pickle refers to a storage {short(pid)}")
        self.push(StorageRef(STORAGES[kind.name], key, count))

    def _build(self, _arg):
        self.pop()  # the state: an OrderedDict's _metadata, a tensor's hooks; nothing we keep
        if not isinstance(self.top(), (dict, TensorRef)):
            raise Refused("the pickle sets the state of an object that is not a dict or a tensor")

    def _setitems(self, _arg):
        items = self.pop_mark()
        target = self.top()
        if not isinstance(target, dict) or len(items) % 2:
            raise Refused("the pickle sets items on something that is not a dict")
        for k in range(0, len(items), 2):
            target[_key(items[k])] = items[k + 1]

    def _setitem(self, _arg):
        value, key = self.pop(), self.pop()
        target = self.top()
        if not isinstance(target, dict):
            raise Refused("the pickle sets an item on something that is not a dict")
        target[_key(key)] = value

    def _appends(self, _arg):
        items = self.pop_mark()
        target = self.top()
        if not isinstance(target, list):
            raise Refused("the pickle appends to something that is not a list")
        target.extend(items)

    def _append(self, _arg):
        value = self.pop()
        target = self.top()
        if not isinstance(target, list):
            raise Refused("the pickle appends to something that is not a list")
        target.append(value)

    def _put(self, arg):
        self.memo[arg] = self.top()

    def _memoize(self, _arg):
        self.memo[len(self.memo)] = self.top()

    def _get(self, arg):
        if arg not in self.memo:
            raise Refused(f"the pickle reads memo slot {arg}, which it never wrote")
        self.push(self.memo[arg])

    STEPS = {
        "PROTO": lambda self, arg: None, "FRAME": lambda self, arg: None,
        "MARK": lambda self, arg: self.push(MARK),
        "EMPTY_DICT": lambda self, arg: self.push({}), "EMPTY_LIST": lambda self, arg: self.push([]),
        "EMPTY_TUPLE": lambda self, arg: self.push(()),
        "TUPLE": lambda self, arg: self.push(tuple(self.pop_mark())),
        "TUPLE1": _tuple_step(1), "TUPLE2": _tuple_step(2), "TUPLE3": _tuple_step(3),
        "LIST": lambda self, arg: self.push(list(self.pop_mark())),
        "DICT": lambda self, arg: self.push(_pairs(self.pop_mark())),
        "NONE": lambda self, arg: self.push(None),
        "NEWTRUE": lambda self, arg: self.push(True), "NEWFALSE": lambda self, arg: self.push(False),
        **{op: (lambda self, arg: self.push(arg)) for op in (
            "BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "BINFLOAT", "FLOAT",
            "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BINBYTES", "SHORT_BINBYTES",
            "BINSTRING", "SHORT_BINSTRING")},
        "GLOBAL": _global, "STACK_GLOBAL": _stack_global, "REDUCE": _reduce,
        "BINPERSID": _persid, "BUILD": _build,
        "SETITEM": _setitem, "SETITEMS": _setitems, "APPEND": _append, "APPENDS": _appends,
        "BINPUT": _put, "LONG_BINPUT": _put, "PUT": _put, "MEMOIZE": _memoize,
        "BINGET": _get, "LONG_BINGET": _get, "GET": _get,
        "POP": lambda self, arg: self.pop(), "POP_MARK": lambda self, arg: self.pop_mark(),
        "DUP": lambda self, arg: self.push(self.top()),
    }


def short(value) -> str:
    """A value from the file, for a message: never more than a line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(key):
    if isinstance(key, (dict, list)):
        raise Refused("the pickle uses a dict or list as a key")
    return key


def _pairs(items: list) -> dict:
    if len(items) % 2:
        raise Refused("the pickle builds a dict from an odd number of items")
    return {_key(items[k]): items[k + 1] for k in range(0, len(items), 2)}
