"""PyTorch ``state_dict`` files (``torch.save``: ``.pt``, ``.pth``, ``.bin``) read without PyTorch
and without running anything from the file.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the dict) and one raw entry per
storage (``<name>/data/<key>``). The pickle is never unpickled: :class:`_Machine` walks its opcodes
(``pickletools.genops``, a parser) with a stack of its own, knowing only the handful of opcodes and
:data:`CALLABLES` a state_dict needs (an ``OrderedDict``, PyTorch's tensor-rebuild functions,
storage and dtype names). Any other global (``os.system``, ``builtins.eval``, a pickled
``nn.Module``) is refused by name before anything is built: there is nothing else it could call.
Each tensor is first a declaration (storage, offset, shape, strides) checked against its storage's
real size; its bytes are read only when the spec takes it.
"""
from __future__ import annotations

import pickletools
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .archive import ZIP_MAGIC, open_zip, read_entry
from .stored import MAX_TENSOR_BYTES, Stored, WeightsFile, numel

PICKLE_MAGIC = b"\x80"
MAX_PICKLE_BYTES = 64 * 1024 ** 2
WRAPPERS = ("state_dict", "model_state_dict", "model")  # checkpoint dicts holding the state_dict
DATAPARALLEL_PREFIX = "module."

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
        raise _Refused(f"a tensor's {what} is {_short(value)}, not a short tuple of non-negative integers")
    return value


def _tensor(storage, offset, size, stride, *_rest, dtype=None):
    if not isinstance(storage, StorageRef) or type(offset) is not int or offset < 0:
        raise _Refused("a tensor is rebuilt from something that is not a storage of the file")
    size, stride = _ints(size, "shape"), _ints(stride, "strides")
    if len(size) != len(stride):
        raise _Refused(f"a tensor has shape {list(size)} but strides {list(stride)}")
    return TensorRef(storage, offset, size, stride, dtype or storage.dtype)


def _tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *_rest):
    if not isinstance(dtype, Name) or dtype.module != "torch" or dtype.name not in DTYPES:
        raise _Refused(f"a tensor's dtype is {_short(dtype)}")
    return _tensor(storage, offset, size, stride, dtype=DTYPES[dtype.name])


def _parameter(data, *_rest):
    if not isinstance(data, TensorRef):
        raise _Refused("a parameter holds something that is not a tensor")
    return data


def _from_type(func, new_type, args, _state):
    if func not in (_tensor, _tensor_v3, _parameter) or new_type not in TENSOR_TYPES or not isinstance(args, tuple):
        raise _Refused("a tensor subclass is rebuilt by something other than PyTorch's tensor functions")
    return func(*args)


def _ordered_dict(*args):
    if args:
        raise _Refused("an OrderedDict is built from arguments")
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


class _Refused(Exception):
    """The pickle asks for something a state_dict does not need."""


class _Mark:
    pass


MARK = _Mark()


class _Machine:
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
                    raise _Refused("the pickle ends with a broken stack")
                return self.stack.pop()
            step = self.STEPS.get(opcode.name)
            if step is None:
                raise _Refused(f"the pickle uses the opcode {opcode.name}, which a state_dict does not need")
            step(self, arg)
        raise _Refused("the pickle has no STOP")

    # -- stack helpers
    def pop(self):
        if not self.stack or self.stack[-1] is MARK:
            raise _Refused("the pickle pops an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is MARK:
                items = self.stack[i + 1:]
                del self.stack[i:]
                return items
        raise _Refused("the pickle has no MARK where one is needed")

    def push(self, value):
        self.stack.append(value)

    def top(self):
        if not self.stack or self.stack[-1] is MARK:
            raise _Refused("the pickle reads an empty stack")
        return self.stack[-1]

    # -- steps
    def _global(self, arg):
        module, _, name = arg.partition(" ")
        self.push(self._name(module, name))

    def _stack_global(self, _arg):
        name, module = self.pop(), self.pop()
        if not (isinstance(module, str) and isinstance(name, str)):
            raise _Refused("the pickle names a global with something that is not text")
        self.push(self._name(module, name))

    @staticmethod
    def _name(module: str, name: str):
        if (module, name) in CALLABLES:
            return CALLABLES[(module, name)]
        marker = Name(module, name)
        if (module == "torch" and (name in STORAGES or name in DTYPES)) or marker in TENSOR_TYPES:
            return marker
        raise _Refused(f"the pickle calls '{module}.{name}', which is not a tensor, a storage or a dict")

    def _reduce(self, _arg):
        args, func = self.pop(), self.pop()
        if not callable(func) or func not in CALLABLES.values() or not isinstance(args, tuple):
            raise _Refused(f"the pickle calls {_short(func)}, which is not one of PyTorch's tensor functions")
        try:
            self.push(func(*args))
        except TypeError:
            raise _Refused(f"the pickle calls {func.__name__} with {len(args)} arguments") from None

    def _persid(self, _arg):
        pid = self.pop()
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Refused(f"the pickle refers to {_short(pid)}, which is not a storage of the file")
        _, kind, key, _location, count = pid
        if not (isinstance(kind, Name) and kind.name in STORAGES and isinstance(key, str) and type(count) is int
                and count >= 0):
            raise _Refused(f"the pickle refers to a storage {_short(pid)}")
        self.push(StorageRef(STORAGES[kind.name], key, count))

    def _build(self, _arg):
        self.pop()  # the state: an OrderedDict's _metadata, a tensor's hooks; nothing we keep
        if not isinstance(self.top(), (dict, TensorRef)):
            raise _Refused("the pickle sets the state of an object that is not a dict or a tensor")

    def _setitems(self, _arg):
        items = self.pop_mark()
        target = self.top()
        if not isinstance(target, dict) or len(items) % 2:
            raise _Refused("the pickle sets items on something that is not a dict")
        for k in range(0, len(items), 2):
            target[_key(items[k])] = items[k + 1]

    def _setitem(self, _arg):
        value, key = self.pop(), self.pop()
        target = self.top()
        if not isinstance(target, dict):
            raise _Refused("the pickle sets an item on something that is not a dict")
        target[_key(key)] = value

    def _appends(self, _arg):
        items = self.pop_mark()
        target = self.top()
        if not isinstance(target, list):
            raise _Refused("the pickle appends to something that is not a list")
        target.extend(items)

    def _append(self, _arg):
        value = self.pop()
        target = self.top()
        if not isinstance(target, list):
            raise _Refused("the pickle appends to something that is not a list")
        target.append(value)

    def _put(self, arg):
        self.memo[arg] = self.top()

    def _memoize(self, _arg):
        self.memo[len(self.memo)] = self.top()

    def _get(self, arg):
        if arg not in self.memo:
            raise _Refused(f"the pickle reads memo slot {arg}, which it never wrote")
        self.push(self.memo[arg])

    def _tuple_n(n):
        def step(self, _arg):
            items = [self.pop() for _ in range(n)][::-1]
            self.push(tuple(items))
        return step

    STEPS = {
        "PROTO": lambda self, arg: None, "FRAME": lambda self, arg: None,
        "MARK": lambda self, arg: self.push(MARK),
        "EMPTY_DICT": lambda self, arg: self.push({}), "EMPTY_LIST": lambda self, arg: self.push([]),
        "EMPTY_TUPLE": lambda self, arg: self.push(()),
        "TUPLE": lambda self, arg: self.push(tuple(self.pop_mark())),
        "TUPLE1": _tuple_n(1), "TUPLE2": _tuple_n(2), "TUPLE3": _tuple_n(3),
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


def _short(value) -> str:
    """A value from the file, for a message: never more than a line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(key):
    if isinstance(key, (dict, list)):
        raise _Refused("the pickle uses a dict or list as a key")
    return key


def _pairs(items: list) -> dict:
    if len(items) % 2:
        raise _Refused("the pickle builds a dict from an odd number of items")
    return {_key(items[k]): items[k + 1] for k in range(0, len(items), 2)}


def _pickle_entry(entries: dict, path) -> str:
    """The archive's folder (``<name>/``) holding ``data.pkl``."""
    pickles = [n for n in entries if n.endswith("/data.pkl") and n.count("/") == 1] or \
              [n for n in entries if n == "data.pkl"]
    if len(pickles) != 1:
        raise InputError(f"{path}: a zip archive but not a PyTorch state_dict file (no single data.pkl inside)")
    return pickles[0][: -len("data.pkl")]


def unwrap(obj, path, notes: list) -> dict:
    """The state_dict inside what was saved: the dict itself, or a checkpoint's ``state_dict`` /
    ``model`` entry; a ``module.`` prefix on every key (``nn.DataParallel``) is dropped. Each is said."""
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    if not any(isinstance(v, TensorRef) for v in obj.values()):
        inner = next((k for k in WRAPPERS if isinstance(obj.get(k), dict)
                      and any(isinstance(v, TensorRef) for v in obj[k].values())), None)
        if inner is None:
            keys = ", ".join(_short(k) for k in list(obj)[:6])
            raise InputError(f"{path}: holds a dict without tensors (keys: {keys}); expected a state_dict or a "
                             f"checkpoint with one of {', '.join(WRAPPERS)}")
        others = [_short(k) for k in list(obj)[:7] if k != inner][:6]
        notes.append(f"read the '{inner}' entry of a checkpoint dict (also holding {', '.join(others) or 'nothing else'}"
                     f"{', ...' if len(obj) > 7 else ''})")
        obj = obj[inner]
    tensors = {k: v for k, v in obj.items() if isinstance(v, TensorRef) and isinstance(k, str)}
    skipped = len(obj) - len(tensors)
    if skipped:
        notes.append(f"skipped {skipped} {'entry' if skipped == 1 else 'entries'} that are not tensors")
    if tensors and all(k.startswith(DATAPARALLEL_PREFIX) for k in tensors):
        tensors = {k[len(DATAPARALLEL_PREFIX):]: v for k, v in tensors.items()}
        notes.append(f"dropped the '{DATAPARALLEL_PREFIX}' prefix of every key (a DataParallel model's state_dict)")
    return tensors


def _materialise(archive, entries, prefix, ref: TensorRef, path, key, byteorder: str):
    """A tensor's bytes, checked against its declaration before anything is allocated."""
    import numpy as np

    info = entries.get(f"{prefix}data/{ref.storage.key}")
    if info is None:
        raise InputError(f"{path}: tensor '{key}' lives in storage '{ref.storage.key}', which the archive lacks")
    raw = read_entry(archive, info, path, MAX_TENSOR_BYTES, stored_only=True)
    item = ITEMSIZE[ref.dtype]
    count = len(raw) // item
    if len(raw) != ref.storage.numel * ITEMSIZE[ref.storage.dtype]:
        raise InputError(f"{path}: tensor '{key}': its storage declares {ref.storage.numel} elements but holds "
                         f"{len(raw)} bytes")
    numpy_dtype = "<u2" if ref.dtype == "bfloat16" else ref.dtype
    if byteorder == "big":
        numpy_dtype = numpy_dtype.replace("<", ">")
    flat = np.frombuffer(raw, dtype=numpy_dtype, count=count)
    array = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.shape,
                                            strides=tuple(s * item for s in ref.stride), writeable=False)
    array = np.array(array)  # a copy: the view's memory is the entry's bytes
    if ref.dtype == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _check_extent(ref: TensorRef, path, key) -> None:
    """Every element the shape and strides reach lies inside the storage (no reading past its end)."""
    count = numel(ref.shape)
    item = ITEMSIZE[ref.dtype]
    storage_items = ref.storage.numel * ITEMSIZE[ref.storage.dtype] // item
    if count * item > MAX_TENSOR_BYTES:
        raise InputError(f"{path}: tensor '{key}' declares shape {list(ref.shape)}, more than the "
                         f"{MAX_TENSOR_BYTES} bytes cnnspec reads for one tensor")
    if count == 0:
        return
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if last >= storage_items or count > storage_items:
        raise InputError(f"{path}: tensor '{key}' (shape {list(ref.shape)}, offset {ref.offset}) reaches past "
                         f"its storage of {storage_items} elements")


def open_torch(path: Path, _graph=None) -> WeightsFile:
    """The state_dict in a ``torch.save`` file, declared; tensors load on demand."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head != ZIP_MAGIC:
        legacy = head[:1] == PICKLE_MAGIC
        raise InputError(f"{path}: not a PyTorch zip file" + (
            " (a bare pickle: PyTorch's legacy format before 1.6, or pickle.dump); re-save it with torch.save in "
            "PyTorch 1.6 or later, or convert it to .safetensors" if legacy else "; .pt/.pth/.bin files are read "
            "as torch.save archives"))
    archive, entries = open_zip(path)
    prefix = _pickle_entry(entries, path)
    data = read_entry(archive, entries[prefix + "data.pkl"], path, MAX_PICKLE_BYTES, stored_only=True)
    order = entries.get(prefix + "byteorder")
    byteorder = read_entry(archive, order, path, 16).decode("ascii", "replace").strip() if order else "little"
    if byteorder not in ("little", "big"):
        raise InputError(f"{path}: byteorder '{byteorder[:20]}' is neither little nor big")
    try:
        obj = _Machine().run(data)
    except _Refused as exc:
        raise InputError(f"{path}: refused: {exc}; only state_dicts (tensors in dicts) are read, and nothing in "
                         f"the file was run") from None
    except (ValueError, KeyError, IndexError, EOFError, UnicodeDecodeError, OverflowError, RecursionError,
            MemoryError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: a damaged pickle in the archive ({type(exc).__name__}); nothing was run") from None
    import numpy as np

    notes: list[str] = []
    refs = unwrap(obj, path, notes)
    stored = {}
    for key, ref in refs.items():
        _check_extent(ref, path, key)
        dtype = "float32" if ref.dtype == "bfloat16" else str(np.dtype(ref.dtype))
        stored[key] = Stored(ref.shape, dtype, lambda ref=ref, key=key: _materialise(
            archive, entries, prefix, ref, path, key, byteorder))
    return WeightsFile("PyTorch state_dict", stored, "neutral", notes=notes)
