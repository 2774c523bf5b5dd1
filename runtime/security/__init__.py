"""Security: users and tokens, roles, ownership and tenants, devices, credentials, the audit log."""
