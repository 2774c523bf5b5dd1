"""The cluster tests' MQTT load (tests/cluster_load.py): readings numbered per device, devices publishing a count or
at a rate and recording what the broker acknowledged, a consumer hearing them back, and the tally of what came
back against what was sent."""

from __future__ import annotations

import time

import pytest
from cluster_load import Consumer, Devices, reading, readings, tally
from hypothesis import given
from hypothesis import strategies as st
from test_device_client import start_mosquitto, stop

CREDENTIALS = ("load", "unused")


@given(n=st.integers(0, 10**6), devices=st.integers(1, 500))
def test_each_device_numbers_its_readings_in_publishing_order(n, devices):
    device, seq = reading(n, devices)
    assert reading(n + devices, devices) == (device, seq + 1)  # its next reading
    assert device == f"d{n % devices:03d}"


def test_readings_of_a_range_are_each_reading_once():
    assert readings(4, 2, devices=3) == {("d002", 0), ("d000", 1), ("d001", 1), ("d002", 1)}
    assert len(readings(10_000)) == 10_000


@given(sent=st.sets(st.integers(0, 50)), received=st.lists(st.integers(0, 60)))
def test_the_tally_counts_distinct_lost_and_extra_copies(sent, received):
    counted = tally(sent, received)
    assert counted.delivered == len(set(received))
    assert counted.lost == sorted(sent - set(received))
    assert counted.duplicates + counted.delivered == len(received)


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.02)


@pytest.fixture
def broker(tmp_path):
    proc, port = start_mosquitto(tmp_path, ["allow_anonymous true"])
    yield port
    stop(proc)


def test_devices_publish_a_count_and_the_consumer_hears_each_reading(broker):
    consumer = Consumer(broker, "in/+", CREDENTIALS, client_id="load-test-consumer")
    devices = Devices(broker, "in/{device}", CREDENTIALS, client_id="load-test-devices", devices=7)
    try:
        devices.send(1_200, 100)
        wait_for(devices.all_acked)
        assert devices.sent == devices.acks == 1_200
        assert devices.acked == readings(1_200, 100, devices=7) == set(devices.published)
        wait_for(lambda: len(consumer.answers()) >= 1_200)
        counted = tally(devices.published, [(a["device"], a["seq"]) for a in consumer.answers()])
        assert (counted.delivered, counted.lost, counted.duplicates) == (1_200, [], 0)
    finally:
        devices.close()
        consumer.close()


def test_devices_at_a_rate_publish_until_stopped(broker):
    consumer = Consumer(broker, "rate/#", CREDENTIALS, client_id="load-test-rate-consumer")
    devices = Devices(broker, "rate/{device}", CREDENTIALS, client_id="load-test-rate", devices=5)
    try:
        devices.start(500)
        wait_for(lambda: devices.sent >= 50)
        devices.stop()
        sent = devices.sent
        assert sent % 10 == 0  # whole ticks of rate * tick readings
        assert set(devices.published) == readings(sent, devices=5)
        wait_for(devices.all_acked)
        wait_for(lambda: len(consumer.answers()) >= sent)
        assert devices.sent == sent  # nothing after stop()
    finally:
        devices.stop()
        devices.close()
        consumer.close()
