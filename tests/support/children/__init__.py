"""Programs the tests run in a fresh interpreter, each by its path (see
``support.child``): not imported by the tests. Each program's docstring says
which test runs it, its arguments and what it prints."""
