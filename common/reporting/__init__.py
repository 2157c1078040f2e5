"""Reports from the results files: the typed summary reader, tables, comparisons, model cards, targets."""
