"""Entry point for ``snmpsim-command-responder`` as the snmpsim fixture runs it.

Two workarounds, both for snmpsim 1.2 with pysnmp 7.1 in this venv:

- snmpsim imports ``pysmi`` only to print its version, but does not declare it; installing
  pysmi would make ``import pysnmp`` warn (DeprecationWarning), which the test suite turns
  into errors. A stub module stands in for it here, in the simulator's process only.
- Run as root, snmpsim drops to an unprivileged user around its file work; when the Python
  standard library lives under ``/root`` that user cannot import lazily loaded modules
  (``dbm.dumb``, codecs). They are imported before the drop.
"""

from __future__ import annotations

import os
import sys
import types

# Run as a script, this file's folder comes first on sys.path, and its neighbour
# tests/peers/snmpsim.py would shadow the real snmpsim package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

if "pysmi" not in sys.modules:
    stub = types.ModuleType("pysmi")
    stub.__version__ = "0 (stub)"  # type: ignore[attr-defined]
    sys.modules["pysmi"] = stub

import bz2  # noqa: F401, E402
import dbm  # noqa: E402
import dbm.dumb  # noqa: F401, E402
import encodings.ascii  # noqa: E402
import encodings.hex_codec  # noqa: E402
import encodings.latin_1  # noqa: E402
import encodings.utf_8  # noqa: F401, E402

from snmpsim.commands.responder import main  # type: ignore[import-untyped]  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
