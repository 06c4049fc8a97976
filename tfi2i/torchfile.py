"""Read the tensors of PyTorch files without torch, and without trusting them.

Two kinds of files are read:

- TorchScript archives (`torch.jit.save`, the FID Inception weights): `load_torchscript`;
- state dicts saved with `torch.save(net.state_dict(), path)` (the pix2pix/CycleGAN
  checkpoints): `load_state_dict`, in both of torch's formats:
  - the zip format of torch >= 1.6: `<root>/data.pkl` is a pickle whose tensors point,
    through pickle "persistent ids", at raw little-endian storages in `<root>/data/<key>`;
  - the legacy format of older torch (and of `_use_new_zipfile_serialization=False`), which
    the released pix2pix/CycleGAN checkpoints use: five pickles in a row (a magic number,
    the protocol version, a dict of system info, the object itself, the list of storage
    keys), then each storage's raw bytes, preceded by its element count as an int64.

Unpickling runs whatever callables the pickle names, so a plain `pickle.load` of a
downloaded file can execute arbitrary code. `RestrictedUnpickler` resolves only the handful
of names tensors and state dicts need and refuses every other one before anything is
called:

- `torch._utils._rebuild_tensor_v2` and `_rebuild_tensor` (torch < 0.4) -> our own function
  building a numpy array; `_rebuild_parameter` (a saved `nn.Parameter`) -> its data;
- `torch.<Dtype>Storage` (and `torch.cuda.<Dtype>Storage`) -> an inert marker naming the
  dtype;
- `torch.jit._pickle.build_intlist` (and its float/bool siblings) -> `list`;
- `collections.OrderedDict` -> `collections.OrderedDict` (state dicts, backward hooks);
- `__torch__.<module path> <Class>` (TorchScript classes of the saved modules) -> an inert
  `ScriptModuleStub` subclass that only stores its attribute dict.

A file that pickles a whole model (`torch.save(model)`, which names the model's Python
classes) is therefore refused: save its `state_dict()` instead. Nothing from torch is
imported: the names above are mapped to local objects.
"""

import collections
import io
import pickle
import re
import struct
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

# The first pickle of a legacy torch file, and the protocol version that follows it.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


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


class _PendingStorage:
    """A legacy-format storage whose bytes come after the pickle that names it."""

    def __init__(self, key, storage_type, numel):
        self.key, self.storage_type, self.numel = key, storage_type, numel
        self.array = None  # Filled in once the bytes are read.


class _PendingView:
    """A view (legacy `view_metadata`) into a `_PendingStorage`."""

    def __init__(self, root, offset, numel):
        self.root, self.offset, self.numel = root, offset, numel

    def resolve(self):
        if self.offset < 0 or self.numel < 0 or self.offset + self.numel > self.root.numel:
            raise pickle.UnpicklingError(f"storage view reaches past storage {self.root.key}")
        return self.root.array[self.offset:self.offset + self.numel]


class _PendingTensor:
    """A tensor over a pending storage, built once the storage bytes are read."""

    def __init__(self, storage, storage_offset, size, stride):
        self.storage, self.args = storage, (storage_offset, size, stride)

    def resolve(self):
        storage = self.storage
        array = storage.resolve() if isinstance(storage, _PendingView) else storage.array
        return _rebuild_tensor_v2(array, *self.args)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Build a numpy array from a storage (a flat numpy array) as torch would a tensor."""
    del requires_grad, backward_hooks, metadata
    if isinstance(storage, (_PendingStorage, _PendingView)):
        return _PendingTensor(storage, storage_offset, size, stride)
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("tensor storage is not a storage record")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    offset = int(storage_offset)
    if len(size) != len(stride):
        raise pickle.UnpicklingError("tensor size and stride differ in length")
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


def _rebuild_tensor(storage, storage_offset, size, stride):
    """torch < 0.4's `_rebuild_tensor`: the same without the autograd arguments."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    """A saved `nn.Parameter` (state dicts saved with `keep_vars=True`): its data."""
    del requires_grad, backward_hooks, args
    return data


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch pickles that resolves only tensor-rebuilding names.

    Args:
        file: the pickle stream.
        load_storage: callable `(key, StorageType, numel) -> np.ndarray` returning the raw
            storage named by a persistent id of the zip format (`("storage", type, key,
            location, numel)`).
        legacy_storages: for the legacy format, a dict this unpickler fills with
            `_PendingStorage` records by key (persistent ids `("storage", type, key,
            location, numel, view_metadata)`); tensors come out as `_PendingTensor`s.
    """

    _ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_floatlist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
        ("torch.jit._pickle", "build_tensorlist"): list,
    }

    def __init__(self, file, load_storage, legacy_storages=None):
        super().__init__(file)
        self._load_storage = load_storage
        self._legacy_storages = legacy_storages
        self._stub_classes = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        # torch.cuda.<Dtype>Storage: a checkpoint saved from the GPU (its bytes are the same).
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return StorageType(name)
        if _SCRIPT_MODULE_RE.match(module) and _IDENTIFIER_RE.match(name):
            full = f"{module}.{name}"
            if full not in self._stub_classes:
                self._stub_classes[full] = type(name, (ScriptModuleStub,), {"type_name": full})
            return self._stub_classes[full]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: not one of the names needed to rebuild tensors")

    def persistent_load(self, pid):
        if self._legacy_storages is not None:
            return self._legacy_persistent_load(pid)
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(key, str) or not _IDENTIFIER_RE.match("k" + key):
            raise pickle.UnpicklingError(f"bad storage key {key!r}")
        return self._load_storage(key, storage_type, int(numel))

    def _legacy_persistent_load(self, pid):
        if isinstance(pid, tuple) and pid and pid[0] in ("module", b"module"):
            # torch.save(model) records the source of the model's classes this way.
            raise pickle.UnpicklingError(
                "refusing to load a pickled nn.Module: this file holds a whole model, not a "
                "state dict (save net.state_dict() instead)")
        if (not isinstance(pid, tuple) or len(pid) != 6 or pid[0] not in ("storage", b"storage")
                or not isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        key = key.decode("ascii") if isinstance(key, bytes) else key
        if not isinstance(key, str) or not _IDENTIFIER_RE.match("k" + key):
            raise pickle.UnpicklingError(f"bad storage key {key!r}")
        storage = self._legacy_storages.get(key)
        if storage is None:
            storage = _PendingStorage(key, storage_type, int(numel))
            self._legacy_storages[key] = storage
        elif storage.storage_type.dtype != storage_type.dtype or storage.numel != int(numel):
            raise pickle.UnpicklingError(f"storage {key} is named with two types or sizes")
        if view is None:
            return storage
        try:
            _view_key, offset, view_numel = view
        except (TypeError, ValueError):
            raise pickle.UnpicklingError(f"bad storage view {view!r}") from None
        return _PendingView(storage, int(offset), int(view_numel))


def restricted_loads(data, load_storage=None):
    """Unpickle `data` (bytes) with `RestrictedUnpickler`; storages refused if no loader."""

    def refuse(key, storage_type, numel):
        raise pickle.UnpicklingError("this pickle has no storages to load")

    return RestrictedUnpickler(io.BytesIO(data), load_storage or refuse).load()


def _load_zip_pickle(path):
    """The object pickled in `<root>/data.pkl` of a torch zip archive, storages resolved."""
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
    return _load_zip_pickle(path)


def _load_legacy(f):
    """The object of a legacy-format torch file (open binary stream `f` at its start)."""
    def small_pickle(what):
        try:
            return restricted_loads_stream(f)
        except EOFError:
            raise pickle.UnpicklingError(f"the file ends before its {what}") from None

    not_torch = pickle.UnpicklingError("not a torch file: neither a zip archive nor torch's "
                                       "legacy format (which starts with a magic number)")
    try:
        magic = small_pickle("magic number")
    except pickle.UnpicklingError as e:
        if "refusing" in str(e):
            raise
        raise not_torch from None
    except Exception:  # noqa: BLE001 (whatever bytes do not parse as a pickle raise)
        raise not_torch from None
    if magic != LEGACY_MAGIC_NUMBER:
        raise not_torch
    version = small_pickle("protocol version")
    if version != LEGACY_PROTOCOL_VERSION:
        raise pickle.UnpicklingError(f"unsupported torch file protocol {version!r}")
    sys_info = small_pickle("system info")
    little_endian = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    storages = {}
    result = RestrictedUnpickler(f, None, legacy_storages=storages).load()
    keys = small_pickle("storage keys")
    if not isinstance(keys, list) or set(keys) != set(storages) or len(keys) != len(storages):
        raise pickle.UnpicklingError("the storage key list does not match the storages the "
                                     "object names")
    order = "<" if little_endian else ">"
    for key in keys:
        storage = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise pickle.UnpicklingError(f"the file ends before storage {key}")
        (numel,) = struct.unpack(order + "q", header)
        if numel != storage.numel:
            raise pickle.UnpicklingError(f"storage {key} has {numel} items on disk where its "
                                         f"tensors say {storage.numel}")
        dtype = storage.storage_type.dtype.newbyteorder(order)
        raw = f.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"the file ends inside storage {key}")
        storage.array = np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="))
    return _resolve_pending(result)


def restricted_loads_stream(f):
    """Unpickle one pickle from the open stream `f` with `RestrictedUnpickler`, no storages."""
    def refuse(key, storage_type, numel):
        raise pickle.UnpicklingError("this pickle has no storages to load")

    return RestrictedUnpickler(f, refuse).load()


def _resolve_pending(value):
    """`value` with its `_PendingTensor`s replaced by numpy arrays (dicts, lists, tuples)."""
    if isinstance(value, _PendingTensor):
        return value.resolve()
    if isinstance(value, dict):
        # In place: keeps an OrderedDict's type and attributes (a state dict's _metadata).
        for key in list(value):
            value[key] = _resolve_pending(value[key])
        return value
    if isinstance(value, list):
        return [_resolve_pending(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve_pending(v) for v in value)
    return value


def is_zip_format(path):
    """Whether `path` is a torch zip archive (torch >= 1.6, TorchScript) or the legacy format."""
    return zipfile.is_zipfile(path)


def load(path):
    """The object saved in a torch file, in either format, with tensors as numpy arrays.

    Args:
        path: a file written by `torch.save` (zip format or legacy format).

    Raises:
        pickle.UnpicklingError: the pickle names anything besides what tensors and state
            dicts need (e.g. a whole pickled model, or a malicious payload), or the file is
            truncated or inconsistent.
        zipfile.BadZipFile, KeyError: a damaged zip archive.
    """
    if is_zip_format(path):
        return _load_zip_pickle(path)
    with open(path, "rb") as f:
        return _load_legacy(f)


def load_state_dict(path):
    """The state dict saved in a torch file, as an ordered {name: numpy array}.

    Args:
        path: a file written by `torch.save(net.state_dict(), path)`, in either format.

    Returns:
        A `collections.OrderedDict` in the file's order. Entries that are not tensors are
        refused.

    Raises:
        pickle.UnpicklingError: as `load`, or the file holds something else than a
            mapping of names to tensors.
    """
    obj = load(path)
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(
            f"the file holds a {type(obj).__name__}, not a state dict (a mapping of names to "
            "tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        shown = ", ".join(repr(k) for k in bad[:5])
        raise pickle.UnpicklingError(
            f"the file holds a dict whose entries {shown} are not tensors: not a plain state "
            "dict (a training checkpoint wrapping one? save net.state_dict() alone)")
    return collections.OrderedDict(obj.items())


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
