"""mailbot's benchmark: backlog throughput, latency, scale and memory, run by hand."""
