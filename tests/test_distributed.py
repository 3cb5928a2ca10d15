"""Lanes sharded over several (simulated CPU) devices give the single-device results."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

# Run in a fresh interpreter: the device count is fixed when JAX first starts.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax
    import numpy as np
    from bench.sweep import distributed
    from bench import run_sweep
    from bench.cli import main

    assert jax.device_count() == 4, jax.devices()
    # 7 lanes over 4 devices: padded to 8, two lanes per device.
    args, lanes = distributed.shard_lanes(
        ({"learning_rate": np.full(7, 0.1)}, np.arange(7)), distributed.lane_mesh(4)
    )
    seeds = args[1]
    assert lanes == 7 and seeds.shape == (8,)
    assert sorted(s.device.id for s in seeds.addressable_shards) == [0, 1, 2, 3]
    assert all(s.data.shape == (2,) for s in seeds.addressable_shards)
    out = sys.argv[1]
    common = ["run", "--problems", "rosenbrock_2d", "logistic_synthetic_200x10",
              "--optimizers", "sgd", "adam", "--seeds", "3", "--steps", "40", "--dtype", "float64"]
    assert main(common + ["--devices", "1", "--out", out + "/one"]) == 0
    assert main(common + ["--devices", "4", "--out", out + "/four"]) == 0
    """
)


def test_four_devices_give_the_single_device_csv(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], check=True, env=env)
    for folder, used in (("one", 1), ("four", 4)):
        meta = json.loads((tmp_path / folder / "meta.json").read_text())
        assert len(meta["devices_used"]) == used and meta["device_count"] == 4
    for name in ("runs.csv.gz", "curves.csv.gz"):
        one, four = pd.read_csv(tmp_path / "one" / name), pd.read_csv(tmp_path / "four" / name)
        timing = [c for c in one.columns if "seconds" in c]
        one, four = one.drop(columns=timing), four.drop(columns=timing)
        # Element-wise problems are bitwise equal: each lane runs the same code on any device.
        elementwise = one["problem"] == "rosenbrock_2d"
        pd.testing.assert_frame_equal(one[elementwise], four[elementwise], check_exact=True)
        # Problems with a matrix product are equal to rounding: XLA:CPU picks its GEMM
        # blocking by the number of lanes on a device (27 on one, 7 on each of four),
        # which changes summation order at the last bit; float64 keeps that below 1e-12.
        pd.testing.assert_frame_equal(one, four, check_exact=False, rtol=1e-12, atol=1e-14)


def test_importing_the_cli_leaves_the_backend_alone():
    """jax.distributed.initialize must run before any backend starts: imports may not start one."""
    code = (
        "import bench.cli, problems, optimizers\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge.backends_are_initialized()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


MULTI_PROCESS = textwrap.dedent(
    """
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from bench.cli import main

    out = sys.argv[1]
    code = main(["run", "--problems", "rosenbrock_2d", "--optimizers", "adam",
                 "--seeds", "3", "--steps", "30", "--out", out])
    assert code == 0 and jax.process_count() == 2 and jax.device_count() == 4
    """
)


def test_two_processes_gather_every_lane_and_only_process_0_writes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MULTI_PROCESS, str(tmp_path / f"process{i}")],
            env={
                **os.environ,
                "JAX_PLATFORMS": "cpu",
                "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": str(i),
            },
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert not (tmp_path / "process1").exists()
    single = tmp_path / "single"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--problems",
            "rosenbrock_2d",
            "--optimizers",
            "adam",
            "--seeds",
            "3",
            "--steps",
            "30",
            "--out",
            str(single),
        ],
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    gathered, alone = (
        pd.read_csv(tmp_path / "process0" / "runs.csv.gz"),
        pd.read_csv(single / "runs.csv.gz"),
    )
    timing = [c for c in alone.columns if "seconds" in c]
    pd.testing.assert_frame_equal(gathered.drop(columns=timing), alone.drop(columns=timing))
