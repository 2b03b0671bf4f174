"""Regenerate src/nnlut/models/default_tables.json: the default tables shipped in the package.

Run after any change to fitting or to the version: ``PYTHONPATH=src python scripts/make_default_tables.py``.
"""

from nnlut.models._default_tables import SHIPPED, write_shipped

if __name__ == "__main__":
    data = write_shipped()
    print(f"wrote {len(data['tables'])} tables to {SHIPPED}")
