"""A sweep: its spec, its trials and the driver that runs them on Ray Tune."""
