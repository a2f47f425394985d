"""Resources: one module per outside system, plus the shared HTTP layer."""
