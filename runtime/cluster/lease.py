"""Fenced leases in Redis: the scripts every lease of the cluster uses (the leader's, each partition's, the
startup turn's, each MQTT session's).

A lease is a key whose value is `<holder>|<fencing token>`, set with an expiry; the token comes from a counter
(INCR) that only grows, so whoever acts under a lease can tell an older holder's late action from a newer one.
Renewing and releasing compare the whole value first: a holder whose lease lapsed and was taken by another
cannot extend or delete the new holder's."""

from __future__ import annotations

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
  return token
end
return false
"""
"""KEYS: the lease, the token counter; ARGV: holder, milliseconds. The new fencing token, or false (held)."""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""KEYS: the lease; ARGV: the lease's whole value, milliseconds. 1 when still ours and extended, else 0."""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""KEYS: the lease; ARGV: the lease's whole value. Deletes it only while it is still ours."""


def parse_lease(value: str | None) -> tuple[str, int] | None:
    """(holder, fencing token) of a lease value `<holder>|<token>`, or None."""
    if not value or "|" not in value:
        return None
    holder, _, token = value.rpartition("|")
    return (holder, int(token)) if token.isdigit() else None
