"""The engine: everything under jit. A lane table in, a `SweepResult` out (`run_sweep`):
what a lane does, how a pair's program is compiled, chunked and run, evaluation seeds,
several devices and hosts, and the frames a result is written as."""
