"""The shop's command line: ``python -m shop.cli COMMAND ...`` (each command commits).

python -m shop.cli restock PRODUCT_ID QUANTITY
python -m shop.cli retire PRODUCT_ID
python -m shop.cli close-organisation ORGANISATION_ID
python -m shop.cli revenue ORGANISATION_ID
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shop import db, services

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shop.cli", description="Run the shop.")
    commands = parser.add_subparsers(dest="command", required=True)
    restock = commands.add_parser("restock", help="add items to a product's stock")
    restock.add_argument("product_id", type=int)
    restock.add_argument("quantity", type=int)
    retire = commands.add_parser("retire", help="stop selling a product")
    retire.add_argument("product_id", type=int)
    close = commands.add_parser("close-organisation", help="close an organisation")
    close.add_argument("organisation_id", type=int)
    revenue = commands.add_parser("revenue", help="an organisation's revenue, in cents")
    revenue.add_argument("organisation_id", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with db.SyncSession() as session:
        try:
            if args.command == "restock":
                product = services.restock(session, args.product_id, args.quantity)
                print(f"{product.sku}: {product.stock} in stock")
            elif args.command == "retire":
                product = services.retire_product(session, args.product_id)
                print(f"{product.sku}: retired")
            elif args.command == "close-organisation":
                org = services.close_organisation(session, args.organisation_id)
                print(f"{org.name}: closed")
            else:
                print(services.revenue(session, args.organisation_id))
        except services.ShopError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
