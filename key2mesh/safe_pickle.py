"""One restricted unpickler for every pickle the project reads (SMPL-format body models,
3DPW sequence files).

These formats are pickles by nature and users download them from the web; a plain
``pickle.load`` runs whatever a crafted file names. Only the classes these formats need are
allowed: numpy arrays and scalars, scipy sparse matrices (SMPL's ``J_regressor``), and
chumpy arrays, which are mapped to a stub and turned into numpy (chumpy itself is
unmaintained and breaks on modern numpy). Anything else is refused with an error that names
the file and the class.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# (module, name) pairs a body model or 3DPW file may reconstruct. Both numpy 1 (numpy.core)
# and numpy 2 (numpy._core) spellings, and scipy's public and private sparse modules.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [(m, c) for m in ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr")
       for c in ("csc_matrix", "csr_matrix")]
    + [("copyreg", "_reconstructor"), ("builtins", "object")]  # how Python-2 pickles rebuild such objects
    + [("_codecs", "encode")]  # how protocol-2 pickles written by Python 3 carry bytes (str -> bytes only)
)


class RefusedPickleError(ValueError):
    """A pickle that names a class the format does not need."""


class ChumpyStub:
    """Stands in for any chumpy class while unpickling; keeps the pickled state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def to_array(self) -> np.ndarray:
        state = self._state
        if isinstance(state, dict):
            for key in ("x", "a", "r"):
                if key in state:
                    return plain(state[key])
        if isinstance(state, (tuple, list)) and state:
            return plain(state[0])
        raise ValueError("unsupported chumpy object in pickle")


def plain(value: Any) -> Any:
    """Chumpy stubs and scipy sparse matrices -> numpy arrays; anything else as it is."""
    if isinstance(value, ChumpyStub):
        return value.to_array()
    if hasattr(value, "toarray"):  # scipy sparse J_regressor in official SMPL files
        return np.asarray(value.toarray())
    return value


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle, path: Path) -> None:
        super().__init__(handle, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return ChumpyStub
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise RefusedPickleError(f"{self.path}: refused to load {module}.{name} (this file may run code; only numpy, "
                                 "scipy sparse and chumpy arrays are allowed in body model and 3DPW pickles)")


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only the array classes above. A refused class raises
    :class:`RefusedPickleError` before it is created; a damaged file raises ``ValueError``."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, path).load()
    except RefusedPickleError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as err:
        raise ValueError(f"{path}: not a readable pickle ({err})") from err
