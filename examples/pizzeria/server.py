"""A small pizzeria ordering service: the menu, placing an order, an order's status.

Standard library only, orders kept in memory. Start it with:

    python examples/pizzeria/server.py --port 8100

Endpoints (described in openapi.yaml beside this file, also served at /openapi.yaml):

    GET  /menu            the pizzas and their prices
    POST /orders          {"items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00",
                           "customer_name": "Ada"}  -> 201 and the order (id, total, status)
    GET  /orders/{id}     an order and its status: received -> baking -> ready

A POST with an `Idempotency-Key` header is placed once: sending it again with the same key and
body returns the same order (header `Idempotent-Replayed: true`); the same key with another body
is refused with 409.
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPEC = Path(__file__).with_name("openapi.yaml")
CURRENCY = "EUR"
MENU = {
    "margherita": (Decimal("8.50"), "Tomato, mozzarella, basil", True),
    "marinara": (Decimal("7.00"), "Tomato, garlic, oregano, olive oil", True),
    "funghi": (Decimal("9.50"), "Tomato, mozzarella, mushrooms", True),
    "diavola": (Decimal("10.00"), "Tomato, mozzarella, spicy salami", False),
    "quattro formaggi": (Decimal("11.50"), "Mozzarella, gorgonzola, parmesan, fontina", True),
}
OPENING, CLOSING = "11:00", "22:30"  # pickup times accepted, inclusive
MAX_QUANTITY = 20
PICKUP_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_BODY = 64_000


class OrderError(Exception):
    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.UNPROCESSABLE_ENTITY):
        super().__init__(message)
        self.status = status


@dataclass
class Order:
    id: int
    items: list[dict[str, Any]]
    total: Decimal
    pickup_time: str
    customer_name: str | None
    created: float = field(default_factory=time.time)

    def to_json(self, ready_after: float) -> dict[str, Any]:
        elapsed = time.time() - self.created
        status = "ready" if elapsed >= ready_after else "baking" if elapsed >= ready_after / 4 else "received"
        return {
            "id": self.id,
            "status": status,
            "items": self.items,
            "total": float(self.total),
            "currency": CURRENCY,
            "pickup_time": self.pickup_time,
            "customer_name": self.customer_name,
            "created_at": datetime.fromtimestamp(self.created, timezone.utc).isoformat(timespec="seconds"),
        }


class Pizzeria:
    """The shop's state; every method is safe to call from several request threads."""

    def __init__(self, ready_after: float = 900.0):
        self.ready_after = ready_after
        self.orders: dict[int, Order] = {}
        self.idempotency: dict[str, tuple[str, int]] = {}  # key -> (request fingerprint, order id)
        self.next_id = 1001
        self.lock = threading.Lock()

    def menu(self) -> dict[str, Any]:
        pizzas = [{"name": name, "price": float(price), "description": about, "vegetarian": veggie}
                  for name, (price, about, veggie) in MENU.items()]
        return {"currency": CURRENCY, "pizzas": pizzas, "pickup_hours": f"{OPENING}-{CLOSING}"}

    def place(self, request: Any, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """The order (new, or the earlier one for a repeated key) and whether it was a replay."""
        items, total, pickup, name = self._validate(request)
        fingerprint = json.dumps(request, sort_keys=True)
        with self.lock:
            if idempotency_key:
                earlier = self.idempotency.get(idempotency_key)
                if earlier and earlier[0] != fingerprint:
                    raise OrderError(f"the Idempotency-Key {idempotency_key!r} was already used for a different "
                                     "order; use a new key for a new order", HTTPStatus.CONFLICT)
                if earlier:
                    return self.orders[earlier[1]].to_json(self.ready_after), True
            order = Order(self.next_id, items, total, pickup, name)
            self.next_id += 1
            self.orders[order.id] = order
            if idempotency_key:
                self.idempotency[idempotency_key] = (fingerprint, order.id)
            return order.to_json(self.ready_after), False

    def get(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            order = self.orders.get(order_id)
        if order is None:
            raise OrderError(f"there is no order {order_id}", HTTPStatus.NOT_FOUND)
        return order.to_json(self.ready_after)

    def _validate(self, request: Any) -> tuple[list[dict[str, Any]], Decimal, str, str | None]:
        if not isinstance(request, dict):
            raise OrderError("the order must be a JSON object with items and pickup_time")
        raw_items = request.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise OrderError("items must be a non-empty list of {pizza, quantity}")
        items, total = [], Decimal("0")
        for raw in raw_items:
            pizza = str(raw.get("pizza", "")).strip().lower() if isinstance(raw, dict) else ""
            quantity = raw.get("quantity", 1) if isinstance(raw, dict) else None
            if pizza not in MENU:
                raise OrderError(f"there is no pizza {pizza!r} on the menu (we have: {', '.join(MENU)})")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= MAX_QUANTITY:
                raise OrderError(f"quantity for {pizza} must be a whole number from 1 to {MAX_QUANTITY}")
            price = MENU[pizza][0]
            items.append({"pizza": pizza, "quantity": quantity, "unit_price": float(price),
                          "line_total": float(price * quantity)})
            total += price * quantity
        pickup = request.get("pickup_time")
        if not isinstance(pickup, str) or not PICKUP_TIME.match(pickup):
            raise OrderError("pickup_time must be a 24-hour time HH:MM, for example 19:00 for 7 pm")
        if not OPENING <= pickup <= CLOSING:
            raise OrderError(f"we hand out pizzas from {OPENING} to {CLOSING}; choose a pickup time in between")
        name = request.get("customer_name")
        if name is not None and (not isinstance(name, str) or len(name) > 80):
            raise OrderError("customer_name must be text of at most 80 characters")
        return items, total, pickup, name


class Handler(BaseHTTPRequestHandler):
    server_version = "pizzeria/1.0"
    shop: Pizzeria  # set on the subclass made by make_server
    quiet = False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/menu":
            return self._send(HTTPStatus.OK, self.shop.menu())
        if path == "/openapi.yaml":
            return self._send_text(HTTPStatus.OK, SPEC.read_text(encoding="utf-8"), "application/yaml")
        match = re.fullmatch(r"/orders/([^/]+)", path)
        if match:
            if not match.group(1).isdigit():
                return self._send(HTTPStatus.NOT_FOUND, {"error": f"there is no order {match.group(1)!r}"})
            return self._answer(lambda: self.shop.get(int(match.group(1))))
        self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {path} (try /menu)"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != "/orders":
            return self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: POST {self.path}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "the order is too large"})
        try:
            request = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._send(HTTPStatus.BAD_REQUEST, {"error": "the body must be JSON"})
        key = self.headers.get("Idempotency-Key")
        try:
            order, replayed = self.shop.place(request, key)
        except OrderError as exc:
            return self._send(exc.status, {"error": str(exc)})
        headers = {"Location": f"/orders/{order['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        self._send(HTTPStatus.CREATED, order, headers)

    def _answer(self, produce) -> None:
        try:
            self._send(HTTPStatus.OK, produce())
        except OrderError as exc:
            self._send(exc.status, {"error": str(exc)})

    def _send(self, status: HTTPStatus, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_text(status, json.dumps(payload), "application/json", headers)

    def _send_text(self, status: HTTPStatus, text: str, content_type: str, headers: dict[str, str] | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not self.quiet:
            super().log_message(format, *args)


def make_server(host: str = "127.0.0.1", port: int = 8100, *, ready_after: float = 900.0,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A server ready for serve_forever(); port 0 picks a free port (see server.server_address)."""
    handler = type("PizzeriaHandler", (Handler,), {"shop": Pizzeria(ready_after), "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="A small pizzeria ordering service (menu, orders, status).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="port (default 8100; 0 picks a free one)")
    parser.add_argument("--ready-after", type=float, default=900.0,
                        help="seconds until an order is ready (default 900)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args()
    try:
        server = make_server(args.host, args.port, ready_after=args.ready_after, quiet=args.quiet)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror or exc})"
        sys.exit(f"error: {args.host}:{args.port} {why}: stop what listens there, or pick another port "
                 "with --port (0 picks a free one)")
    host, port = server.server_address[:2]
    print(f"pizzeria listening on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
