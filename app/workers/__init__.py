"""Long-running in-process services with start()/stop()."""
