"""How a parallel run (`python -m pytest -n 2`, --dist loadgroup) groups the tests (tests/conftest.py): the files
that kill servers, hold leases or start a cluster run one after another on one worker; tests/differential stays
on one worker (its session fixtures start Node-RED and sofiaflow once); any other file stays whole on one worker
(its module fixtures start their servers once)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import SERIAL_GROUP, TESTS, xdist_group


def group_of(relative: str) -> str:
    return xdist_group(SimpleNamespace(path=TESTS / relative))


@pytest.mark.parametrize(
    "name",
    [
        "test_cluster_firing.py",
        "test_cluster_mqtt_ingress.py",
        "test_partition_cluster.py",
        "test_partition_node.py",
        "test_alarm_cluster.py",
        "test_mqtt_ack_after_processing.py",
        "test_editor_browser.py",
        "test_editor_scenario.py",
        "test_api_swagger_browser.py",
    ],
)
def test_cluster_kill_9_and_browser_files_share_the_serial_group(name: str) -> None:
    assert group_of(name) == SERIAL_GROUP


def test_the_differential_folder_is_one_group_and_other_files_their_own() -> None:
    assert group_of("differential/test_differential.py") == "differential"
    assert group_of("differential/test_mqtt_differences.py") == "differential"
    assert group_of("test_node_rbe.py") == "test_node_rbe.py"
    assert group_of("test_editor_pages_helpers.py") == "test_editor_pages_helpers.py"
    assert group_of("test_node_rbe.py") != group_of("test_node_json.py")


def test_every_collected_test_carries_its_group(request: pytest.FixtureRequest) -> None:
    mark = request.node.get_closest_marker("xdist_group")
    assert mark is not None and mark.args == (Path(__file__).name,)


def test_serial_files_exist() -> None:
    """Each pattern still names real files (a renamed file would leave the serial group silently)."""
    from conftest import SERIAL_FILES

    for pattern in SERIAL_FILES:
        assert list(TESTS.glob(pattern)), pattern
