"""Tenancy markers shared by the store and its callers (a light module: no SQL library)."""

# Kill-switch rows of global scope belong to no tenant; they carry this marker so that
# ``tenant_id`` is still never NULL and every read still filters on it.
GLOBAL_TENANT = "*"
