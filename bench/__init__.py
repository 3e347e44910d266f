"""exsvd-bench command line: ``python -m bench --help``."""
