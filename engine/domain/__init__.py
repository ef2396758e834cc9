"""Pure rules and plain data: no I/O, imports nothing of ours outside engine.domain. See docs/architecture.md."""
