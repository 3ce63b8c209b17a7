"""A restricted unpickler for BIWI's `templates.pkl`: numpy arrays and plain containers only.

`pickle.load` runs any code a file asks for; this one refuses every global that is not needed
to rebuild numpy arrays, so a malicious pickle fails with an error instead of running.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from ..core.errors import TalkingHeadError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("_codecs", "encode"),  # numpy arrays pickled under Python 2 / latin-1 byte strings
}


class UnsafePickleError(TalkingHeadError):
    """The pickle asked for something other than numpy arrays and plain containers."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"refusing to load {module}.{name} from a pickle: only numpy arrays and plain containers are allowed")
        return super().find_class(module, name)


def load_restricted(path: str | Path):
    """Load a pickle of numpy arrays in dicts/lists (e.g. BIWI's templates.pkl), safely."""
    data = Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise TalkingHeadError(f"cannot read pickle {path}: {exc}") from None
