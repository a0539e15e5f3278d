"""Generated Magento 2 exports (customers main file, orders grid) with deliberate defects.

The tests assert that the import's data-quality report finds exactly the defects planted here;
the import benchmark reuses :func:`write_orders` for its large clean file.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

CUSTOMER_COLUMNS = [
    "email", "_website", "_store", "confirmation", "created_at", "created_in",
    "disable_auto_group_change", "dob", "firstname", "gender", "group_id", "lastname",
    "middlename", "password_hash", "prefix", "rp_token", "rp_token_created_at", "store_id",
    "suffix", "taxvat", "updated_at", "website_id",
]  # fmt: skip
ORDER_COLUMNS = [
    "ID", "Purchase Point", "Purchase Date", "Bill-to Name", "Ship-to Name",
    "Grand Total (Base)", "Grand Total (Purchased)", "Status", "Billing Address",
    "Shipping Address", "Shipping Information", "Customer Email", "Customer Group", "Subtotal",
    "Shipping and Handling", "Customer Name", "Payment Method", "Total Refunded",
]  # fmt: skip
_FIRST = ["Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas"]
_LAST = ["Schmidt", "Meyer", "Smith", "Garcia", "Rossi", "Dubois", "Novak", "Kim", "Berg"]
_START = datetime(2022, 1, 1, 8, 0, 0)


@dataclass
class MagentoExport:
    """The files written and the exact numbers their check reports must show."""

    customers_csv: Path
    orders_csv: Path
    known_customers: Path
    expected: dict[str, Any] = field(default_factory=dict)


def customer_email(i: int) -> str:
    return f"customer{i:06d}@example.com"


def _customer_row(i: int, email: str, rng: random.Random) -> dict[str, Any]:
    created = _START + timedelta(minutes=37 * i)
    return {
        "email": email,
        "_website": "base",
        "_store": "default",
        "confirmation": "",
        "created_at": created.strftime("%Y-%m-%d %H:%M:%S"),
        "created_in": "Default Store View",
        "disable_auto_group_change": "0",
        "dob": "" if i % 3 else f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
        "firstname": _FIRST[i % len(_FIRST)],
        "gender": ("Male", "Female", "Not Specified")[i % 3],
        "group_id": "1",
        "lastname": _LAST[i % len(_LAST)],
        "middlename": "",
        "password_hash": "",
        "prefix": "",
        "rp_token": "",
        "rp_token_created_at": "",
        "store_id": "1",
        "suffix": "",
        "taxvat": "",
        "updated_at": created.strftime("%Y-%m-%d %H:%M:%S"),
        "website_id": "1",
    }


def money(amount: Decimal) -> str:
    """Magento's grid format: ``$1,234.50``."""
    return f"${amount:,.2f}"


def order_row(n: int, email: str, when: datetime, total: Decimal) -> dict[str, Any]:
    """One row of the Magento 2 orders grid export."""
    name = email.split("@")[0].title()
    return {
        "ID": f"{n:09d}",
        "Purchase Point": "Main Website\nMain Website Store\nDefault Store View",
        "Purchase Date": when.strftime("%b %d, %Y %I:%M:%S %p"),
        "Bill-to Name": name,
        "Ship-to Name": name,
        "Grand Total (Base)": money(total),
        "Grand Total (Purchased)": money(total),
        "Status": "complete",
        "Billing Address": "1 Main St, Springfield, 12345",
        "Shipping Address": "1 Main St, Springfield, 12345",
        "Shipping Information": "Flat Rate - Fixed",
        "Customer Email": email,
        "Customer Group": "General",
        "Subtotal": money(total - Decimal("5.00")),
        "Shipping and Handling": "$5.00",
        "Customer Name": name,
        "Payment Method": "Check / Money order",
        "Total Refunded": "",
    }


def write_magento_exports(
    directory: Path,
    *,
    customers: int = 300,
    orders: int = 900,
    bad_emails: int = 6,
    duplicate_customers: int = 4,
    orphan_orders: int = 7,
    broken_dates: int = 5,
    bad_amounts: int = 3,
    seed: int = 11,
) -> MagentoExport:
    """Write ``customers.csv``, ``orders.csv`` and ``known_customers.txt`` into ``directory``.

    Defects, each on distinct rows: ``bad_emails`` customers whose e-mail has no ``@``;
    ``duplicate_customers`` extra rows repeating an earlier customer (same e-mail and website);
    ``orphan_orders`` orders by e-mails no customer has (one unknown customer each);
    ``broken_dates`` orders with an impossible date; ``bad_amounts`` orders whose total is not a
    number. Orders of good customers only; the defective orders are the first ones.
    """
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    cust_path = directory / "customers.csv"
    emails: list[str] = []
    with cust_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, CUSTOMER_COLUMNS)
        w.writeheader()
        for i in range(customers):
            email = customer_email(i)
            if i < bad_emails:
                email = email.replace("@", ".at.")  # not an address
            else:
                emails.append(email)
            w.writerow(_customer_row(i, email, rng))
        for j in range(duplicate_customers):
            i = bad_emails + 10 * j  # a good customer, exported twice
            w.writerow(_customer_row(i, customer_email(i), rng))
    known_path = directory / "known_customers.txt"
    known_path.write_text("\n".join(emails) + "\n", encoding="utf-8")

    orders_path = directory / "orders.csv"
    revenue = Decimal(0)
    valid = 0
    with orders_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ORDER_COLUMNS)
        w.writeheader()
        for n in range(1, orders + 1):
            when = _START + timedelta(hours=7 * n, minutes=n % 60)
            total = Decimal(rng.randint(500, 250_000)) / 100
            email = emails[rng.randrange(len(emails))]
            row = order_row(n, email, when, total)
            k = n - 1
            if k < orphan_orders:
                row["Customer Email"] = f"ghost{k}@example.org"
            elif k < orphan_orders + broken_dates:
                row["Purchase Date"] = ("Feb 30, 2023 10:00:00 AM", "yesterday", "2023-13-01")[
                    k % 3
                ]
            elif k < orphan_orders + broken_dates + bad_amounts:
                row["Grand Total (Purchased)"] = "12,34.5x"
            if orphan_orders + broken_dates <= k < orphan_orders + broken_dates + bad_amounts:
                pass
            elif not (orphan_orders <= k < orphan_orders + broken_dates):
                revenue += total
                valid += 1
            w.writerow(row)
    expected = {
        "customer_rows": customers + duplicate_customers,
        "customers": customers,
        "bad_emails": bad_emails,
        "duplicate_customers": duplicate_customers,
        "order_rows": orders,
        "orphan_orders": orphan_orders,
        "broken_dates": broken_dates,
        "bad_amounts": bad_amounts,
        "valid_orders": valid,
        "revenue": revenue,
    }
    return MagentoExport(cust_path, orders_path, known_path, expected)


def write_orders(path: Path, orders: int, customers: int, seed: int = 3) -> Decimal:
    """A large clean Magento orders grid export (benchmarks); returns its total revenue."""
    rng = random.Random(seed)
    revenue = Decimal(0)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ORDER_COLUMNS)
        w.writeheader()
        for n in range(1, orders + 1):
            total = Decimal(rng.randint(500, 250_000)) / 100
            revenue += total
            when = _START + timedelta(seconds=37 * n)
            w.writerow(order_row(n, customer_email(rng.randrange(customers)), when, total))
    return revenue
