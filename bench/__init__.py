"""The benchmark: ``make bench`` (``python -m bench.run``) writes ``bench/RESULTS.md``. See ``bench/README.md``."""
