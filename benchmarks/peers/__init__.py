"""Side-by-side epoch times against the tools users would pick instead.

``python -m benchmarks.peers.run_peers`` (the command line and the driver)
pairs every framework's epochs with a reference's; one concern a module:
``frameworks`` (each framework's epoch, set up once), ``workers`` (the
persistent worker process and its line protocol), ``pairing`` (the paired
schedule and its statistics) and ``report`` (``docs/peers.md`` and
``docs/peers.png``).
"""
