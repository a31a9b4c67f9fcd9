"""Development helpers shared by `tests/` and `bench/`: never shipped, never imported by the
pipeline.

The benchmarks need the same throwaway PostgreSQL databases and the same fake Together
server as the tests; keeping them here, rather than in `tests/`, lets `bench/` use them
without importing the test suite (tests/test_layering.py checks both directions). The
wheel leaves this package out (setup.py lists the packages it ships).
"""
