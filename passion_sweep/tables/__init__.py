"""Paper-style tables from the runs in an MLflow store: collect, compare, format, plot."""
