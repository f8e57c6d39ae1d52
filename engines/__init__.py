"""Engine and store plugins, each registered through an entry point (none yet)."""
