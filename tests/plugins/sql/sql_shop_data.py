"""A small shop, the same in PostgreSQL and MariaDB: the tables, and the rows as Python lists from
which the tests compute the answers they expect."""

from datetime import date
from decimal import Decimal
from typing import Callable

CUSTOMERS = [  # id, name, country, vip
    (1, "Zoë Ådahl", "Sweden", True),
    (2, "Ravi Patel", "India", False),
    (3, "María González", "Spain", True),
    (4, "Chen Wei", "China", False),
    (5, "O'Brien | Pipe\nLine", "Ireland", False),
    (6, "Nobody Yet", "France", None),
]
PRODUCTS = [(1, "Espresso beans 1kg", Decimal("24.90")), (2, "Grinder", Decimal("129.00")),
            (3, "Filter papers", Decimal("4.35")), (4, "Kettle", Decimal("59.99"))]
ORDERS = [  # id, customer_id, placed_at, status
    (101, 1, date(2024, 3, 5), "paid"), (102, 1, date(2025, 1, 15), "paid"), (103, 2, date(2025, 2, 20), "paid"),
    (104, 3, date(2025, 6, 1), "paid"), (105, 3, date(2025, 7, 4), "refunded"), (106, 4, date(2025, 11, 30), "paid"),
    (107, 5, date(2025, 12, 31), "paid"), (108, 2, date(2024, 12, 31), "paid"),
]
ORDER_ITEMS = [  # order_id, product_id, quantity, unit_price
    (101, 1, 2, Decimal("24.90")), (101, 3, 1, Decimal("4.35")), (102, 2, 1, Decimal("129.00")),
    (102, 1, 3, Decimal("24.90")), (103, 4, 1, Decimal("59.99")), (104, 1, 1, Decimal("24.90")),
    (104, 3, 10, Decimal("4.35")), (105, 2, 1, Decimal("129.00")), (106, 1, 4, Decimal("24.90")),
    (107, 4, 2, Decimal("59.99")), (107, 3, 1, Decimal("4.35")), (108, 2, 1, Decimal("129.00")),
]

SHOP_TABLES = {
    "postgres": [
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, country text NOT NULL, vip boolean)",
        "CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL)",
        "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers(id), "
        "placed_at date NOT NULL, status text NOT NULL)",
        "CREATE TABLE order_items (order_id integer NOT NULL REFERENCES orders(id), product_id integer NOT NULL "
        "REFERENCES products(id), quantity integer NOT NULL, unit_price numeric(10,2) NOT NULL, "
        "PRIMARY KEY (order_id, product_id))",
        "CREATE SEQUENCE invoice_numbers",
        "CREATE SCHEMA audit",
        "CREATE TABLE audit.events (id integer PRIMARY KEY, note text)",
        "INSERT INTO audit.events VALUES (1, 'created')",
    ],
    "mysql": [
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, country VARCHAR(40) NOT NULL, "
        "vip BOOLEAN) ENGINE=InnoDB",
        "CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, price DECIMAL(10,2) NOT NULL) "
        "ENGINE=InnoDB",
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, placed_at DATE NOT NULL, "
        "status VARCHAR(20) NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB",
        "CREATE TABLE order_items (order_id INT NOT NULL, product_id INT NOT NULL, quantity INT NOT NULL, "
        "unit_price DECIMAL(10,2) NOT NULL, PRIMARY KEY (order_id, product_id), "
        "FOREIGN KEY (order_id) REFERENCES orders(id), FOREIGN KEY (product_id) REFERENCES products(id)) ENGINE=InnoDB",
    ],
}


def insert_shop(execute_many: Callable[[str, list], None]) -> None:
    execute_many("INSERT INTO customers VALUES (%s, %s, %s, %s)", CUSTOMERS)
    execute_many("INSERT INTO products VALUES (%s, %s, %s)", PRODUCTS)
    execute_many("INSERT INTO orders VALUES (%s, %s, %s, %s)", ORDERS)
    execute_many("INSERT INTO order_items VALUES (%s, %s, %s, %s)", ORDER_ITEMS)
