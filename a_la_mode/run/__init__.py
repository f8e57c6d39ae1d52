"""Running: the scheduler (pure state), the runner (the I/O), the engine contract."""
