# The benchmarks measure; they are not tests. `make bench` runs them (python -m tests.bench).
collect_ignore_glob = ["*.py", "floor/*.py"]
