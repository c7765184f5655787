"""Every compatibility shim the pinned stack needs, in one place.

Why each exists (all measured on the pinned versions in requirements.txt):

1. ``mmcv.ops`` without compiled ops. mmsegmentation 1.2.2 needs mmcv>=2.0.0rc4,<2.2.0; the only such build that
   installs from the registry without a 6-minute compile is ``mmcv-lite==2.1.0``, which has no ``mmcv._ext``.
   ``mmseg.datasets``/``mmseg.models``/``mmseg.utils`` import ``mmcv.ops`` only for ``point_sample`` (pure PyTorch in
   mmcv's own source) and a few CUDA heads groupseg never builds. When ``mmcv._ext`` is missing we register a stand-in
   ``mmcv.ops`` module that serves ``point_sample`` from mmcv's own pure-PyTorch file, and raises a clear error for
   everything compiled (``from mmcv.ops import X`` raises ModuleNotFoundError, which mmseg's optional imports catch).
   With a full mmcv build installed, nothing is patched.
2. mmengine 0.10.7 + torch>=2.6: ``torch.load`` defaults to ``weights_only=True`` and mmengine's own checkpoints
   (which pickle its ``HistoryBuffer``, numpy arrays and scalars) fail to load. We keep torch's safe loader and let
   mmengine's *local-file* loader allow exactly those types (:data:`MMENGINE_SAFE_GLOBALS`, in a scoped
   ``torch.serialization.safe_globals``: nothing changes for anyone else's ``torch.load``). A file that pickles
   anything else is refused, never run. For a file you trust, torch's own opt-in applies:
   ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``. groupseg's own checkpoints are safetensors + JSON and never need pickle.
3. open_clip imports torchvision: a torchvision that does not match torch fails deep inside open_clip. We check the
   pair before open_clip is imported (``groupseg/models/text.py``) and say what to install.

Call :func:`apply` (idempotent) before importing mmseg; ``groupseg/__init__.py`` does it. The shims take effect when
``mmcv.ops`` and mmengine's checkpoint module are first imported, so ``import groupseg`` itself imports neither.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import pickle
import sys
import types
import warnings

_APPLIED = False

# mmcv.ops names that need mmcv's compiled extension; mmseg imports them at module level or lazily.
_COMPILED_NAMES_IMPORTED_AT_LOAD = ("sigmoid_focal_loss",)


class MissingCompiledOp(RuntimeError):
    pass


def _compiled_op_stub(name: str):
    def stub(*args, **kwargs):
        raise MissingCompiledOp(
            f"mmcv.ops.{name} needs mmcv's compiled extension, which mmcv-lite does not ship. groupseg never uses it; "
            "to use it anyway install full mmcv 2.1.0 (pip install mmcv==2.1.0 --no-build-isolation, ~7 min build)."
        )

    stub.__name__ = name
    return stub


def _has_compiled_mmcv() -> bool:
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def install_mmcv_ops_standin() -> bool:
    """Register the ``mmcv.ops`` stand-in if mmcv has no compiled ops. Returns True if the stand-in is in use."""
    if "mmcv.ops" in sys.modules:
        return getattr(sys.modules["mmcv.ops"], "__groupseg_standin__", False)
    import mmcv

    if _has_compiled_mmcv():
        return False
    ops_dir = os.path.join(os.path.dirname(mmcv.__file__), "ops")
    module = types.ModuleType("mmcv.ops", "groupseg stand-in for mmcv.ops (mmcv-lite has no compiled ops)")
    module.__path__ = [ops_dir]  # submodules such as mmcv.ops.point_sample still import from mmcv's own files
    module.__groupseg_standin__ = True
    sys.modules["mmcv.ops"] = module
    mmcv.ops = module
    point_sample_mod = importlib.import_module("mmcv.ops.point_sample")  # pure PyTorch, no _ext
    module.point_sample = point_sample_mod.point_sample
    module.bilinear_grid_sample = point_sample_mod.bilinear_grid_sample
    for name in _COMPILED_NAMES_IMPORTED_AT_LOAD:
        setattr(module, name, _compiled_op_stub(name))

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        # mmseg guards its optional compiled imports with `except ModuleNotFoundError`, so raise exactly that.
        raise ModuleNotFoundError(
            f"mmcv.ops.{name} is a compiled op and this environment has mmcv-lite (no compiled ops); "
            "install full mmcv 2.1.0 to use it"
        )

    module.__getattr__ = __getattr__
    return True


def _history_buffer_method(owner: type, name: str):
    """The one ``getattr`` an mmengine checkpoint pickles: ``HistoryBuffer``'s statistics methods (min, max, ...).

    Stands in for ``builtins.getattr`` in the allow-list, so a file cannot reach any other attribute through it."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if owner is not HistoryBuffer or name.startswith("_") or not callable(getattr(HistoryBuffer, name, None)):
        raise pickle.UnpicklingError(f"refusing getattr({owner!r}, {name!r}) in an mmengine checkpoint")
    return getattr(HistoryBuffer, name)


def mmengine_safe_globals() -> list:
    """What mmengine's own checkpoints pickle besides tensors (``torch.serialization.get_unsafe_globals_in_checkpoint``
    on a Runner checkpoint): its ``HistoryBuffer`` (and its statistics methods) and numpy arrays / scalars."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    dtype_classes = [type(np.dtype(t)) for t in np.typecodes["All"] if t not in "OV"]
    return [HistoryBuffer, (_history_buffer_method, "builtins.getattr"), multiarray._reconstruct, multiarray.scalar,
            np.ndarray, np.dtype, *dtype_classes]  # fmt: skip


def refused_globals(path: str) -> list[str]:
    """What mmengine's patched loader would refuse to unpickle in the torch file ``path`` (nothing runs to find out)."""
    import torch

    allowed = set()
    for item in mmengine_safe_globals():
        allowed.add(item[1] if isinstance(item, tuple) else f"{item.__module__}.{item.__qualname__}")
    return [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(path) if name not in allowed]


def patch_mmengine_checkpoint_loading() -> None:
    """Let mmengine load its own checkpoints under torch>=2.6 with torch's safe (weights-only) loader, local files."""
    import torch
    from mmengine.runner import checkpoint as ckpt

    loader = ckpt.CheckpointLoader._schemes.get("")
    if loader is None or getattr(loader, "__groupseg_patched__", False):
        return

    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"{filename} can not be found.")
        # weights_only is left to torch (True by default), so that TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 still opts in
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(filename, map_location=map_location)

    load_from_local.__groupseg_patched__ = True
    ckpt.CheckpointLoader._schemes[""] = load_from_local
    ckpt.load_from_local = load_from_local


def check_torchvision() -> None:
    """Fail early, with the fix, when torchvision does not match torch (open_clip imports torchvision)."""
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # a mismatched build raises RuntimeError/ImportError/OSError from C++ ops
        import torch

        raise ImportError(
            f"torchvision does not import beside torch {torch.__version__} ({type(err).__name__}: {err}). "
            "Install the matching pair from requirements.txt: pip install torch==2.14.1 torchvision==0.29.1"
        ) from err


class _ShimOnImport(importlib.abc.MetaPathFinder):
    """Applies shims 1 and 2 at the moment ``mmcv.ops`` / ``mmengine.runner.checkpoint`` are first imported, by
    whoever imports them: ``import groupseg`` then stays light (no mmcv, mmengine or torch until they are used)."""

    def find_spec(self, name, path, target=None):
        if name == "mmcv.ops":
            if not install_mmcv_ops_standin():
                return None  # full mmcv: its own mmcv.ops
            # mmseg's transformer bricks warn on import that the deformable-attention op is missing: expected here.
            warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
            return importlib.util.spec_from_loader(name, _Present(sys.modules[name]), is_package=True)
        if name == "mmengine.runner.checkpoint":
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None:
                spec.loader = _PatchAfter(spec.loader, patch_mmengine_checkpoint_loading)
            return spec
        return None


class _Present(importlib.abc.Loader):
    """Serves a module that is already built (the stand-in)."""

    def __init__(self, module: types.ModuleType):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        pass


class _PatchAfter(importlib.abc.Loader):
    """Runs the real loader, then ``patch()`` (which imports the module it patches: already in sys.modules)."""

    def __init__(self, loader, patch):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        sys.modules[module.__name__] = module
        self.patch()


def apply() -> None:
    """Apply every shim, now for what is already imported and on import for the rest. Safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    if "mmcv" in sys.modules and install_mmcv_ops_standin():  # mmcv.ops itself imported before groupseg: kept
        warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
    if "mmengine.runner.checkpoint" in sys.modules:
        patch_mmengine_checkpoint_loading()
    sys.meta_path.insert(0, _ShimOnImport())
