"""labkit's foundation: the few helpers every layer shares, each with one home.

- :mod:`~labkit._util.atomic`: write a file so readers see the old or the new bytes, never half;
- :mod:`~labkit._util.hashing`: sha256 of files and of JSON-ready values;
- :mod:`~labkit._util.clock`: the current UTC time, as a datetime, an ISO string or a file stamp;
- :mod:`~labkit._util.versions`: versions of labkit and the packages a result depends on;
- :mod:`~labkit._util.checks`: check a name against the valid ones, with close matches;
- :mod:`~labkit._util.lazy`: package exports that load on first use;
- :mod:`~labkit._util.progress`: progress bars, live on a terminal, a few lines in a log.

Nothing here imports another part of labkit; everything else may import this.
"""
