"""Running the process: structured logs, Prometheus metrics, the heap policy."""
