"""``python -m nnlut`` (and ``torchrun ... -m nnlut``): the ``nnlut`` command line."""

from nnlut.cli import main

raise SystemExit(main())
