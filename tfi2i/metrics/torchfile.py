"""Read the tensors of a TorchScript archive without torch, and without trusting it.

A TorchScript file (`torch.jit.save`) is a zip archive: `<root>/data.pkl` is a pickle of the
module tree whose tensors point, through pickle "persistent ids", at raw little-endian storages
in `<root>/data/<key>`. Unpickling runs whatever callables the pickle names, so a plain
`pickle.load` of a downloaded file can execute arbitrary code. `RestrictedUnpickler` resolves
only the handful of names a TorchScript module tree needs and refuses every other one before
anything is called:

- `torch._utils._rebuild_tensor_v2` -> our own function building a numpy array;
- `torch.<Dtype>Storage` -> an inert marker naming the dtype;
- `torch.jit._pickle.build_intlist` (and its float/bool siblings) -> `list`;
- `collections.OrderedDict` -> `collections.OrderedDict` (the empty backward-hooks dict);
- `__torch__.<module path> <Class>` (TorchScript classes of the saved modules) -> an inert
  `ScriptModuleStub` subclass that only stores its attribute dict.

Nothing from torch is imported: the names above are mapped to local objects.
"""

import collections
import pickle
import re
import zipfile

import numpy as np

# Storage classes torch pickles by name, with the numpy dtype of their raw bytes.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

# A TorchScript class name: `__torch__.` then dotted Python identifiers only.
_SCRIPT_MODULE_RE = re.compile(r"^__torch__(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StorageType:
    """Inert stand-in for `torch.<Dtype>Storage`: it only names a numpy dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])

    def __repr__(self):
        return f"StorageType({self.name})"


class ScriptModuleStub:
    """Inert stand-in for a TorchScript module: attributes only, no code.

    The unpickler creates one subclass per TorchScript class name; `type_name` holds that name
    (e.g. `__torch__.inceptionv3.Conv2dLayer`) and `attrs` the pickled attributes (sub-modules,
    tensors as numpy arrays, ints, lists).
    """

    type_name = "__torch__"

    def __init__(self):
        # Called only if a pickle REDUCEs the class with no arguments; keep it harmless.
        self.__dict__["attrs"] = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"unexpected state of type {type(state).__name__} for {self.type_name}")
        self.__dict__["attrs"] = dict(state)

    def __getattr__(self, name):
        attrs = self.__dict__.get("attrs", {})
        if name in attrs:
            return attrs[name]
        raise AttributeError(f"{self.type_name} has no attribute {name!r}")

    def __repr__(self):
        return f"<{self.type_name} {sorted(self.__dict__.get('attrs', {}))}>"


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Build a numpy array from a storage (a flat numpy array) as torch would a tensor."""
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("tensor storage is not a storage record")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    offset = int(storage_offset)
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError("negative tensor offset, size or stride")
    if not all(size):
        return np.zeros(size, storage.dtype)
    # Bounds check first: as_strided would otherwise read past the buffer.
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise pickle.UnpicklingError("tensor reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * storage.itemsize for s in stride),
        writeable=False)
    return np.array(view)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for TorchScript `data.pkl` that resolves only tensor-rebuilding names.

    Args:
        file: the pickle stream.
        load_storage: callable `(key, StorageType, numel) -> np.ndarray` returning the raw
            storage named by a persistent id.
    """

    _ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_floatlist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
        ("torch.jit._pickle", "build_tensorlist"): list,
    }

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage
        self._stub_classes = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return StorageType(name)
        if _SCRIPT_MODULE_RE.match(module) and _IDENTIFIER_RE.match(name):
            full = f"{module}.{name}"
            if full not in self._stub_classes:
                self._stub_classes[full] = type(name, (ScriptModuleStub,), {"type_name": full})
            return self._stub_classes[full]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: not one of the names needed to rebuild tensors")

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(key, str) or not _IDENTIFIER_RE.match("k" + key):
            raise pickle.UnpicklingError(f"bad storage key {key!r}")
        return self._load_storage(key, storage_type, int(numel))


def restricted_loads(data, load_storage=None):
    """Unpickle `data` (bytes) with `RestrictedUnpickler`; storages refused if no loader."""
    import io

    def refuse(key, storage_type, numel):
        raise pickle.UnpicklingError("this pickle has no storages to load")

    return RestrictedUnpickler(io.BytesIO(data), load_storage or refuse).load()


def load_torchscript(path):
    """Load the module tree of a TorchScript archive as `ScriptModuleStub`s and numpy arrays.

    Args:
        path: a `.pt` file written by `torch.jit.save`.

    Returns:
        The root `ScriptModuleStub`; tensors are numpy arrays (float32 for FloatStorage).

    Raises:
        pickle.UnpicklingError: the pickle names anything besides what tensors need.
        zipfile.BadZipFile, KeyError: the file is not a TorchScript archive.
    """
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise KeyError(f"{path}: expected one <root>/data.pkl, found {pickles}")
        root = pickles[0][: -len("data.pkl")]
        # torch writes `byteorder` only when saving on a big-endian machine's behalf.
        byteorder = "little"
        if root + "byteorder" in names:
            byteorder = archive.read(root + "byteorder").decode().strip()
        storages = {}

        def load_storage(key, storage_type, numel):
            if key not in storages:
                raw = archive.read(f"{root}data/{key}")
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) < numel * dtype.itemsize:
                    raise pickle.UnpicklingError(f"storage {key} is shorter than {numel} items")
                storages[key] = np.frombuffer(raw, dtype, count=numel).astype(
                    storage_type.dtype.newbyteorder("="))
            return storages[key]

        with archive.open(root + "data.pkl") as f:
            return RestrictedUnpickler(f, load_storage).load()


def flatten_modules(module, prefix=""):
    """Flatten a stub tree into `{"a.b.attr": value}` for every non-module attribute."""
    out = {}
    for name, value in module.attrs.items():
        key = f"{prefix}{name}"
        if isinstance(value, ScriptModuleStub):
            out.update(flatten_modules(value, key + "."))
        else:
            out[key] = value
    return out
