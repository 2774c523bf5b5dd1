"""The credential store loads cryptography only when it has something to decrypt or encrypt, and writes the
credentials only when they differ from what the database holds; what it stores reads back the same."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.config_db import credentials as credentials_table
from sofiaflow.runtime.security.credentials import CredentialError, CredentialStore


def _blobs(engine) -> list[bytes]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(select(credentials_table.c.blob))]


@pytest.fixture()
def db(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'c.db'}")
    yield engine
    engine.dispose()


def test_no_credentials_store_nothing_and_load_as_none(db) -> None:
    key = Fernet.generate_key()
    store = CredentialStore(db, key)
    store.load()
    store.apply({}, {"n1"})
    store.save()
    assert _blobs(db) == []
    again = CredentialStore(db, key)
    again.load()
    assert again.get("n1") == {}


def test_saved_credentials_read_back_and_an_unchanged_save_writes_nothing(db) -> None:
    key = Fernet.generate_key()
    store = CredentialStore(db, key)
    store.load()
    store.apply({"n1": {"password": "s3cret"}}, {"n1"})
    store.save()
    (blob,) = _blobs(db)
    assert b"s3cret" not in blob
    store.apply({"n1": {"password": "__PWRD__"}}, {"n1"})
    store.save()
    assert _blobs(db) == [blob]  # the same row: not encrypted again
    again = CredentialStore(db, key)
    again.load()
    assert again.get("n1") == {"password": "s3cret"}
    again.apply({}, set())  # the node is gone: its credentials too
    again.save()
    assert _blobs(db) != [blob]
    last = CredentialStore(db, key)
    last.load()
    assert last.get("n1") == {}


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.dictionaries(st.sampled_from(["user", "password", "token"]), st.text(min_size=1), max_size=3),
        max_size=3,
    )
)
def test_whatever_is_saved_loads_back(tmp_path_factory, creds: dict) -> None:
    engine = connect(f"sqlite:///{tmp_path_factory.mktemp('c') / 'c.db'}")
    try:
        key = Fernet.generate_key()
        store = CredentialStore(engine, key)
        store.load()
        store.apply(creds, set(creds))
        store.save()
        again = CredentialStore(engine, key)
        again.load()
        assert {n: again.get(n) for n in creds} == {n: v for n, v in creds.items()}
    finally:
        engine.dispose()


def test_another_key_cannot_read_them(db) -> None:
    store = CredentialStore(db, Fernet.generate_key())
    store.load()
    store.apply({"n1": {"password": "x"}}, {"n1"})
    store.save()
    with pytest.raises(CredentialError, match="credential secret changed"):
        CredentialStore(db, Fernet.generate_key()).load()


@pytest.mark.parametrize(
    "key",
    [b"", b"short", b"!" * 44, Fernet.generate_key()[:-4]],
    ids=["empty", "short", "not-base64", "cut-short"],  # the same ids in every process of a parallel run
)
def test_a_key_fernet_refuses_is_refused_at_once(key: bytes) -> None:
    with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
        Fernet(key)
    with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
        CredentialStore(None, key)


def test_a_store_without_credentials_does_not_load_cryptography(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = (
        "import sys\n"
        "from sofiaflow.runtime.data.config_db import connect\n"
        "from sofiaflow.runtime.security.credentials import CredentialStore\n"
        f"store = CredentialStore(connect({url!r}), {Fernet.generate_key()!r})\n"
        "store.load(); store.apply({}, set()); store.save()\n"
        "print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout
