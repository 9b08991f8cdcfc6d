"""Training: options, loss, loop, run directory stream, CLI."""
