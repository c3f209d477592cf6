"""Reproducible evaluations (ablations, external validation) that write tables, JSON and plots."""
