"""The cluster benchmark's steady figures (tests/bench/cluster.py): CPU seconds and write calls read from /proc,
the ceiling a row's CPU per message allows, and the verdict on the 2-worker aim."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.append(str(Path(__file__).resolve().parent / "bench"))

import cluster as bench  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

BURN = """
import sys, time
while time.process_time() < 0.3:
    pass
for _ in range(50):
    sys.stdout.write("x\\n")
    sys.stdout.flush()
sys.stdin.read()
"""


def test_cpu_seconds_and_write_calls_of_a_child_are_read_from_proc():
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = [child.stdout.readline() for _ in range(50)]  # it burnt its CPU and wrote 50 times
        assert lines == ["x\n"] * 50
        assert child.pid in bench.descendants(bench.os.getpid())
        assert bench.cpu_seconds(child.pid) >= 0.29
        assert bench.write_calls(child.pid) >= 50
    finally:
        child.stdin.close()
        child.wait(30)
    assert bench.cpu_seconds(child.pid) == 0.0  # gone
    assert bench.write_calls(child.pid) == 0


def test_busy_cores_seconds_grow_with_work():
    before = bench.busy_cores_seconds()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert bench.busy_cores_seconds() - before >= 0.15


roles = st.dictionaries(
    st.sampled_from(["w1", "w1 sandbox", "w2", "w2 sandbox", "broker", "load clients"]),
    st.floats(0.01, 10.0),
    min_size=1,
)


@given(roles, st.integers(1, 64))
def test_the_ceiling_is_the_tighter_of_the_cores_and_the_busiest_process(cpu, n):
    cores = bench.cores
    bench.cores = lambda: n
    try:
        top = bench.ceiling(cpu)
    finally:
        bench.cores = cores
    by_cores = n * 10_000 / sum(cpu.values())
    by_busiest = 10_000 / max(cpu.values())
    assert top == pytest.approx(min(by_cores, by_busiest))
    assert top <= by_cores * (1 + 1e-9) and top <= by_busiest * (1 + 1e-9)


def rows(n_cores: int) -> tuple[dict, dict]:
    one = {"msgs_per_s": 1000.0, "cpu": {"w1": 1.7, "w1 sandbox": 1.5, "broker": 0.35, "load clients": 0.25}}
    two = {
        "msgs_per_s": 1300.0,
        "cpu": {
            "w1": 1.0,
            "w1 sandbox": 0.8,
            "w2": 1.0,
            "w2 sandbox": 0.8,
            "broker": 0.3,
            "load clients": 0.2,
        },
    }
    for row in (one, two):
        row.update(cores_ours=0.5, cores_others=0.2 * n_cores)
    return one, two


@pytest.mark.parametrize(("n_cores", "verdict"), [(2, "cannot show"), (8, "hold the 2-worker aim")])
def test_the_verdict_follows_the_cores(monkeypatch, n_cores, verdict):
    monkeypatch.setattr(bench, "cores", lambda: n_cores)
    text = "\n".join(bench.two_worker_verdict(*rows(n_cores)))
    assert verdict in text
    # 2 cores: one worker tops at 2 x 10,000 / 3.8 = 5,263 msgs/s (all its processes within the cores; its
    # busiest alone would allow 10,000 / 1.7 = 5,882), two at 2 x 10,000 / 4.1 = 4,878
    if n_cores == 2:
        assert "5,263 msgs/s on one worker and 4,878 on two" in text
