"""A pickle module for ``torch.load(..., pickle_module=safe_pickle, weights_only=False)`` that never runs pickled code.

Official GroupViT ``.pth`` files pickle a whole training state: the weights, but also an OmegaConf config, optimizer
and apex-amp state. torch's ``weights_only`` loader refuses such files outright; plain ``pickle`` would import and call
whatever they name. This unpickler resolves only the globals that tensors and ``OrderedDict`` state dicts need; every
other global becomes an inert placeholder that records its arguments and state and runs nothing. The weights come out
intact, everything else comes out as placeholders (an :class:`Inert`), which is all a weights loader needs.
"""
from __future__ import annotations

import collections
import pickle
from typing import Any, BinaryIO

import torch
import torch._utils
from torch.serialization import StorageType

__all__ = ["Inert", "Unpickler", "load"]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch.storage", "UntypedStorage"): torch.storage.UntypedStorage,
    ("torch.storage", "TypedStorage"): torch.storage.TypedStorage,
    **{
        ("torch._utils", name): getattr(torch._utils, name)
        for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                     "_rebuild_parameter_with_state")
    },
}


class Inert:
    """Stands in for a class or function the pickle names and we will not import: keeps its inputs, runs nothing."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<not unpickled: {self.qualname}>"


_placeholders: dict[str, type[Inert]] = {}


def _placeholder(module: str, name: str) -> type[Inert]:
    qualname = f"{module}.{name}"
    if qualname not in _placeholders:
        _placeholders[qualname] = type(f"Inert[{qualname}]", (Inert,), {"qualname": qualname})
    return _placeholders[qualname]


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "torch" and name.endswith("Storage"):  # legacy (pre-zip) files name typed storages
            try:
                return StorageType(name)
            except KeyError:
                pass
        return _placeholder(module, name)


def load(file: BinaryIO, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()
