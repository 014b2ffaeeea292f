"""Reference data: the currencies, countries and product categories the shop knows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CURRENCIES = [
    ("EUR", "Euro", 2),
    ("GBP", "Pound sterling", 2),
    ("USD", "US dollar", 2),
    ("CHF", "Swiss franc", 2),
    ("SEK", "Swedish krona", 2),
    ("JPY", "Japanese yen", 0),
]
COUNTRIES = [
    ("DE", "Germany", "EUR"),
    ("FR", "France", "EUR"),
    ("NL", "Netherlands", "EUR"),
    ("GB", "United Kingdom", "GBP"),
    ("US", "United States", "USD"),
    ("CH", "Switzerland", "CHF"),
    ("SE", "Sweden", "SEK"),
    ("JP", "Japan", "JPY"),
]
CATEGORIES = [
    ("books", "Books"),
    ("games", "Games"),
    ("music", "Music"),
    ("garden", "Garden"),
    ("kitchen", "Kitchen"),
]

currencies = sa.table(
    "currencies", sa.column("code"), sa.column("name"), sa.column("exponent", sa.Integer)
)
countries = sa.table("countries", sa.column("code"), sa.column("name"), sa.column("currency_code"))
categories = sa.table("categories", sa.column("slug"), sa.column("name"))


def upgrade() -> None:
    op.bulk_insert(currencies, [{"code": c, "name": n, "exponent": e} for c, n, e in CURRENCIES])
    op.bulk_insert(
        countries, [{"code": c, "name": n, "currency_code": cur} for c, n, cur in COUNTRIES]
    )
    op.bulk_insert(categories, [{"slug": s, "name": n} for s, n in CATEGORIES])


def downgrade() -> None:
    op.execute(categories.delete())
    op.execute(countries.delete())
    op.execute(currencies.delete())
