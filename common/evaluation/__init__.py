"""Evaluation: cached outputs, the rho sweep, trade-offs, a task's test report, figures."""
