"""AuthService: the admin user, argon2 passwords, hashed tokens with expiry, failed-login rate limit."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from sofiaflow.runtime.data.config_db import connect, tokens, users
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.security.auth import AuthService, TooManyAttemptsError
from sofiaflow.runtime.settings import Settings


@pytest.fixture
def db(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'auth.db'}")
    yield engine
    engine.dispose()


def make(db, password: str | None = "from-env-pass", **kw) -> AuthService:
    return AuthService(db, Settings(admin_password=password), **kw)


def test_admin_from_env_is_created_once_and_not_returned(db):
    auth = make(db)
    assert auth.ensure_admin() is None
    assert auth.verify_password("admin", "from-env-pass")
    # a later start with another env password leaves the existing admin alone
    assert make(db, "other").ensure_admin() is None
    assert auth.verify_password("admin", "from-env-pass")
    assert not auth.verify_password("admin", "other")


def test_generated_admin_password_is_returned_once(db):
    auth = make(db, None)
    password = auth.ensure_admin()
    assert isinstance(password, str) and len(password) >= 12
    assert auth.verify_password("admin", password)
    assert auth.ensure_admin() is None


def test_passwords_are_argon2_hashes(db):
    make(db).ensure_admin()
    with db.connect() as conn:
        stored, role = conn.execute(select(users.c.password_hash, users.c.role)).one()
    assert stored.startswith("$argon2") and "from-env-pass" not in stored
    assert role == "administrator"


def test_token_issue_check_revoke(db):
    auth = make(db)
    auth.ensure_admin()
    token, expires_in = auth.issue_token("admin", "from-env-pass")
    assert expires_in == 7 * 24 * 3600
    assert auth.check_token(token) == "admin"
    assert auth.token_info(token) == ("admin", "*")
    with db.connect() as conn:
        hashes = [r[0] for r in conn.execute(select(tokens.c.token_hash))]
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]  # only the hash is stored
    auth.revoke(token)
    with pytest.raises(AuthError, match="unknown token"):
        auth.check_token(token)


def test_bad_credentials_and_unknown_tokens(db):
    auth = make(db)
    auth.ensure_admin()
    with pytest.raises(AuthError, match="invalid username or password"):
        auth.issue_token("admin", "wrong")
    with pytest.raises(AuthError, match="invalid username or password"):
        auth.issue_token("nobody", "from-env-pass")
    with pytest.raises(AuthError):
        auth.check_token("not-a-token")
    with pytest.raises(AuthError):
        auth.check_token("")
    with pytest.raises(AuthError, match="scope"):
        auth.issue_token("admin", "from-env-pass", scope="root")


def test_expired_token_is_refused_and_removed(db):
    auth = make(db)
    auth.ensure_admin()
    auth.settings.token_lifetime = 0
    token, _ = auth.issue_token("admin", "from-env-pass")
    with pytest.raises(AuthError, match="expired"):
        auth.check_token(token)
    with pytest.raises(AuthError, match="unknown"):
        auth.check_token(token)


def test_failed_logins_are_rate_limited_per_user_and_client(db):
    now = [1000.0]
    auth = make(db, monotonic=lambda: now[0])
    auth.ensure_admin()
    for _ in range(5):
        with pytest.raises(AuthError, match="invalid"):
            auth.issue_token("admin", "wrong", client="10.0.0.1")
    # even the right password is refused now, from that client
    with pytest.raises(TooManyAttemptsError, match="too many attempts"):
        auth.issue_token("admin", "from-env-pass", client="10.0.0.1")
    # another client is not affected
    assert auth.issue_token("admin", "from-env-pass", client="10.0.0.2")[0]
    now[0] += 61
    assert auth.issue_token("admin", "from-env-pass", client="10.0.0.1")[0]


def test_read_scope_token(db):
    auth = make(db)
    auth.ensure_admin()
    token, _ = auth.issue_token("admin", "from-env-pass", scope="read")
    assert auth.token_info(token) == ("admin", "read")


def test_users_can_be_added_and_passwords_changed(db):
    auth = make(db)
    auth.add_user("ops", "pw-1")
    with pytest.raises(AuthError, match="already exists"):
        auth.add_user("ops", "pw-2")
    auth.set_password("ops", "pw-2")
    assert auth.verify_password("ops", "pw-2") and not auth.verify_password("ops", "pw-1")
    with pytest.raises(AuthError):
        auth.set_password("ghost", "x")
