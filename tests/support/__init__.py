"""Code the test files share: not tests themselves, and not pytest fixtures.

Imported as ``support`` (pytest puts ``tests/`` on ``sys.path``, since ``tests/``
is not a package), whether pytest runs from the repository root or on one file:

* ``backends``: load a backend or skip (fail where CI requires it); the BLAS
  thread check.
* ``contract``: calling a ``train_steps`` from plain arrays.
* ``tolerance``: the tolerances every equivalence test uses, and the checks
  built on them.
* ``nets``: small seeded nets and data for the step tests.
* ``callbacks``: callbacks that script what the training reports.
* ``child``: running one of ``children/`` in a fresh interpreter.
* ``children/``: programs run in a child process, by path (not imported).

``conftest.py`` keeps only fixtures and hooks, built from these.
"""
