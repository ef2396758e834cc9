"""The test plans' common part: tenant acme, the orders-primary connection, the change on
shop.orders. Each test module adds the people it needs (``people``)."""

from __future__ import annotations

ACME = """
tenant = "acme"
[connection]
id = "orders-primary"
host = "10.0.0.12"
user = "canary"
database = "shop"
password_env = "CANARY_DB_PASSWORD"
[change]
table = "orders"
index = "idx_orders_customer_created"
columns = ["customer_id", "created_at"]
"""


def people(*who: tuple[str, str, str] | tuple[str, str, str, str]) -> str:
    """``[[people]]`` tables from (name, role, unix_user[, contact]) tuples."""
    out = []
    for w in who:
        out.append(f'[[people]]\nname = "{w[0]}"\nrole = "{w[1]}"\nunix_user = "{w[2]}"\n'
                   + (f'contact = "{w[3]}"\n' if len(w) > 3 else ""))
    return "".join(out)
