"""Regenerate src/nnlut/models/default_tables.json: the default tables shipped in the package.

Run after any change to fitting or to the version: ``PYTHONPATH=src python scripts/make_default_tables.py``.
Give keys (such as ``reciprocal-nnlut-16-paper-0``) to refit only those and keep the others.
"""

import sys

from nnlut.models._default_tables import SHIPPED, write_shipped

if __name__ == "__main__":
    only = sys.argv[1:] or None
    data = write_shipped(only=only)
    print(f"wrote {len(data['tables'])} tables to {SHIPPED}" + (f" (refitted {', '.join(only)})" if only else ""))
