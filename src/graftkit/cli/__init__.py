"""The `graft` command line: a thin layer over the library."""
