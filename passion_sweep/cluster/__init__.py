"""Running a sweep on a Ray cluster: job submission, shared storage, the tracking server."""
