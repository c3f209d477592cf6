"""Per-case inference entry points: validated inputs in, a result dataclass with images out."""
