"""`make perf` (`python -m bench.perf`): speed measured side by side in one run, apart from
the engine; see bench/perf/run.py."""
