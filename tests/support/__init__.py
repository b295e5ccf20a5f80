"""Code the test files share: not tests themselves, and not pytest fixtures.

Imported as ``support`` (``pythonpath`` in pyproject.toml puts ``tests/`` on
``sys.path``; the test folders are not packages), whether pytest runs from the
repository root, on one folder or on one file:

* ``backends``: load a backend or skip (fail where CI requires it); the BLAS
  thread check.
* ``contract``: the contract's function names; calling a ``train_steps`` from
  plain arrays.
* ``tolerance``: the tolerances every equivalence test uses, and the checks
  built on them.
* ``nets``: small seeded nets and data for the step tests.
* ``models``: small seeded models and data for the model-level tests.
* ``callbacks``: callbacks that script what the training reports.
* ``child``: running one of ``children/`` in a fresh interpreter.
* ``children/``: programs run in a child process, by path (not imported).

``conftest.py`` keeps only fixtures and hooks, built from these.
"""
