"""Compiling: the DSL and spec files to a verified, canonical plan."""
