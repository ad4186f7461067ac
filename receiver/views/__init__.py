"""HTTP handlers, one module per audience: CSS callbacks, and operations (health, metrics)."""
