"""Latency benchmarks of exported students: TFLite's ``benchmark_model`` on Android (mobile), desktop runs, reports."""
