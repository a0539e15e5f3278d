"""The journeys OpenCDP ships: ``{"preset": name, "settings": {…}}`` becomes a full journey
definition (shown by ``GET /api/journeys/{key}``, editable like any other).

* ``abandoned-cart``: a ``Product Added`` or ``Checkout Started`` (one instance per
  ``cart_id``; the profile when there is none) waits ``wait`` (default 1 hour) for an
  ``Order Completed``; another ``Product Added`` starts the wait again. An order ends it
  without a word; otherwise one e-mail lists the cart: the last ``Checkout Started``'s
  ``products``, else every product added (once each).
* ``back-in-stock``: each ``Back In Stock`` event (a shopper's request answered when the
  product's stock came back) gets one e-mail with the product's name, image, price and link
  from the catalog; one instance per product, again at the next restock. The dispatcher checks
  the stock once more when it sends: a product sold out again is not announced.
* ``welcome``: a ``Signed Up`` or ``Loyalty Enrolled`` event, or a new profile that comes with
  an e-mail (its first identify, a Contact API call), gets one confirmation e-mail, once per
  profile.
* ``loyalty-welcome``: the loyalty programme's own welcome: each ``Loyalty Enrolled`` (the
  enrolment API online or at the till, the self-service profile, any SDK) gets one e-mail that
  names the programme, the member number and the card handed out, also for a customer the
  ``welcome`` journey greeted long before. Once per profile.

Settings: ``destination`` (required: where the e-mail goes, an ``smtp`` destination, or any
other that takes the message), ``wait`` (abandoned cart), ``subject``, ``event_name``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opencdp.activate.journey import JourneyError
from opencdp.timeutil import parse_duration

# The cart: the last checkout's products, else the products added (each once).
_CART = """\
{%- set checkout = properties.journey_context['Checkout Started'] -%}
{%- if checkout and checkout.products -%}{%- set items = checkout.products -%}
{%- else -%}
{%- set ns = namespace(items=[], seen=[]) -%}
{%- for e in properties.journey_events if e.event == 'Product Added' -%}
{%- set id = e.properties.product_id or e.properties.sku or e.properties.name -%}
{%- if id not in ns.seen -%}
{%- set ns.seen = ns.seen + [id] -%}{%- set ns.items = ns.items + [e.properties] -%}
{%- endif -%}
{%- endfor -%}
{%- set items = ns.items -%}
{%- endif -%}
"""
_NAME = "{{ context.traits.first_name or context.traits.name or 'there' }}"

# Each item's product in the catalog (``product()``, by id, else SKU) names it and links it
# when the item itself does not (an app or a till may send ids only).
_ITEM = (
    "{%- set c = product(p.product_id or p.sku) or {} -%}"
    "{%- set name = p.name or c.name or p.product_id or p.sku -%}"
    "{%- set url = p.url or c.url -%}"
)
CART_TEXT = (
    _CART
    + f"Hello {_NAME},\n\nyou left this in your cart:\n\n"
    + "{% for p in items %}"
    + _ITEM
    + "- {{ name }}"
    "{% if p.quantity %} x {{ p.quantity }}{% endif %}"
    "{% if p.price is defined and p.price is not none %}: {{ p.price }}"
    "{% if p.currency %} {{ p.currency }}"
    "{% endif %}{% endif %}{% if url %} ({{ url }}){% endif %}\n{% endfor %}"
    "\nIt is still waiting for you.\n"
)
CART_HTML = (
    _CART
    + f"<p>Hello {_NAME},</p>\n<p>you left this in your cart:</p>\n<ul>\n"
    + "{% for p in items %}"
    + _ITEM
    + '<li>{% if url %}<a href="{{ url }}">{% endif %}'
    "{{ name }}{% if url %}</a>{% endif %}"
    "{% if p.quantity %} &times; {{ p.quantity }}{% endif %}"
    "{% if p.price is defined and p.price is not none %}: {{ p.price }}"
    "{% if p.currency %} {{ p.currency }}"
    "{% endif %}{% endif %}</li>\n{% endfor %}</ul>\n<p>It is still waiting for you.</p>\n"
)
WELCOME_TEXT = (
    f"Hello {_NAME},\n\nwelcome, and thank you for signing up. We are glad to have you with us.\n"
)
WELCOME_HTML = (
    f"<p>Hello {_NAME},</p>\n<p>welcome, and thank you for signing up. "
    "We are glad to have you with us.</p>\n"
)

_MEMBER = (
    "{%- set m = properties.journey_context['Loyalty Enrolled'] -%}"
    "{%- set programme = m.programme or 'our loyalty programme' -%}\n"
)
LOYALTY_WELCOME_TEXT = (
    _MEMBER + f"Hello {_NAME},\n\nwelcome to {{{{ programme }}}}: you are a member now.\n\n"
    "Your member number: {{ m.member_id }}\n"
    "{% if m.card_number %}Your card: {{ m.card_number }}\n{% endif %}"
    "\nShow your member card at the till (the card you were given, or the one in your "
    "account), or sign in when you shop online: every purchase earns points.\n"
)
LOYALTY_WELCOME_HTML = (
    _MEMBER + f"<p>Hello {_NAME},</p>\n<p>welcome to <strong>{{{{ programme }}}}</strong>: "
    "you are a member now.</p>\n<p>Your member number: {{ m.member_id }}"
    "{% if m.card_number %}<br>Your card: {{ m.card_number }}{% endif %}</p>\n"
    "<p>Show your member card at the till (the card you were given, or the one in your "
    "account), or sign in when you shop online: every purchase earns points.</p>\n"
)

_STOCK = "{%- set p = properties.journey_context['Back In Stock'] -%}\n"
BACK_IN_STOCK_TEXT = (
    _STOCK + f"Hello {_NAME},\n\n{{{{ p.name or p.product_id }}}} is back in stock"
    "{% if p.location and p.location != 'web' %} at {{ p.location }}{% endif %}."
    "{% if p.price is defined and p.price is not none %} {{ p.price }}"
    "{% if p.currency %} {{ p.currency }}{% endif %}.{% endif %}\n"
    "{% if p.url %}\n{{ p.url }}\n{% endif %}"
    "\nYou asked us to tell you. Be quick: stock is limited.\n"
)
BACK_IN_STOCK_HTML = (
    _STOCK + f"<p>Hello {_NAME},</p>\n"
    '{% if p.image_url %}<p><img src="{{ p.image_url }}" alt="{{ p.name }}" width="240"></p>'
    "{% endif %}\n<p>"
    '{% if p.url %}<a href="{{ p.url }}">{% endif %}<strong>{{ p.name or p.product_id }}'
    "</strong>{% if p.url %}</a>{% endif %} is back in stock"
    "{% if p.location and p.location != 'web' %} at {{ p.location }}{% endif %}."
    "{% if p.price is defined and p.price is not none %} {{ p.price }}"
    "{% if p.currency %} {{ p.currency }}{% endif %}.{% endif %}</p>\n"
    "<p>You asked us to tell you. Be quick: stock is limited.</p>\n"
)

_ALLOWED = {
    "abandoned-cart": {"destination", "wait", "subject", "event_name"},
    "welcome": {"destination", "subject", "event_name"},
    "back-in-stock": {"destination", "subject", "event_name"},
    "loyalty-welcome": {"destination", "subject", "event_name"},
}


def abandoned_cart(settings: dict[str, Any]) -> dict[str, Any]:
    wait = str(settings.get("wait", "1 hour"))
    cart = 'event = "Product Added" or event = "Checkout Started"'
    return {
        "name": "Abandoned cart",
        "description": f"A cart without an order within {wait} gets one e-mail listing it.",
        "entry": {"event": cart, "unique_identifier": "properties.cart_id"},
        "reentry": "every_time",
        "exit": {
            "after": "30 days",
            "rules": [
                {"name": "ordered", "event": 'event = "Order Completed"', "match_identifier": True}
            ],
        },
        "steps": [
            {
                "key": "wait_for_order",
                "wait_until": {
                    "timeout": wait,
                    "branches": [
                        {
                            "name": "ordered",
                            "event": 'event = "Order Completed"',
                            "match_identifier": True,
                            "next": "end",
                        },
                        {
                            "name": "cart_changed",
                            "event": cart,
                            "match_identifier": True,
                            "restart": True,
                        },
                    ],
                },
            },
            {
                "key": "reminder",
                "send": {
                    "destination": settings["destination"],
                    "event_name": settings.get("event_name", "Cart Abandoned"),
                    "template": {
                        "subject": settings.get("subject", "You left something in your cart"),
                        "text": CART_TEXT,
                        "html": CART_HTML,
                    },
                },
            },
        ],
    }


def welcome(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Welcome",
        "description": "A new customer with an e-mail (or a sign-up) gets one confirmation.",
        "entry": [
            {"event": 'event = "Signed Up" or event = "Loyalty Enrolled"'},
            {"event": 'type = "identify" and traits.email != null', "new_profile": True},
        ],
        "reentry": "once",
        "steps": [
            {
                "key": "confirmation",
                "send": {
                    "destination": settings["destination"],
                    "event_name": settings.get("event_name", "Welcome Sent"),
                    "template": {
                        "subject": settings.get("subject", "Welcome, " + _NAME),
                        "text": WELCOME_TEXT,
                        "html": WELCOME_HTML,
                    },
                },
            }
        ],
    }


def back_in_stock(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Back in stock",
        "description": "A shopper who asked is told once, by e-mail, when the product is back.",
        "entry": {"event": 'event = "Back In Stock"', "unique_identifier": "properties.product_id"},
        "reentry": "every_time",
        "steps": [
            {
                "key": "notify",
                "send": {
                    "destination": settings["destination"],
                    "event_name": settings.get("event_name", "Back In Stock Notified"),
                    "template": {
                        "subject": settings.get(
                            "subject",
                            "{{ properties.journey_context['Back In Stock'].name or "
                            "'Your product' }} is back in stock",
                        ),
                        "text": BACK_IN_STOCK_TEXT,
                        "html": BACK_IN_STOCK_HTML,
                    },
                },
            }
        ],
    }


def loyalty_welcome(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Loyalty welcome",
        "description": "A new member (online, at the till, from any SDK) gets one confirmation.",
        "entry": {"event": 'event = "Loyalty Enrolled"'},
        "reentry": "once",
        "steps": [
            {
                "key": "confirmation",
                "send": {
                    "destination": settings["destination"],
                    "event_name": settings.get("event_name", "Loyalty Welcome Sent"),
                    "template": {
                        "subject": settings.get(
                            "subject",
                            "Welcome to {{ properties.journey_context['Loyalty Enrolled']"
                            ".programme or 'our loyalty programme' }}",
                        ),
                        "text": LOYALTY_WELCOME_TEXT,
                        "html": LOYALTY_WELCOME_HTML,
                    },
                },
            }
        ],
    }


PRESETS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "abandoned-cart": abandoned_cart,
    "welcome": welcome,
    "back-in-stock": back_in_stock,
    "loyalty-welcome": loyalty_welcome,
}


def expand_preset(body: dict[str, Any]) -> dict[str, Any]:
    """The definition ``{"preset", "settings"}`` stands for; raises :class:`JourneyError`."""
    unknown = sorted(set(body) - {"preset", "settings", "enabled"})
    if unknown:
        raise JourneyError(f"unknown keys {unknown}: a preset takes preset, settings, enabled")
    name = body.get("preset")
    if name not in PRESETS:
        raise JourneyError(f"preset: {name!r} is not a preset; known: {', '.join(PRESETS)}")
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise JourneyError("settings: a JSON object")
    extra = sorted(set(settings) - _ALLOWED[name])
    if extra:
        raise JourneyError(
            f"settings: unknown {extra}; {name} takes {', '.join(sorted(_ALLOWED[name]))}"
        )
    if not isinstance(settings.get("destination"), str) or not settings["destination"]:
        raise JourneyError("settings.destination: the id of the destination the e-mail goes to")
    if "wait" in settings:
        try:
            parse_duration(settings["wait"])
        except ValueError as exc:
            raise JourneyError(f"settings.wait: {exc}") from None
    for key in ("subject", "event_name"):
        if key in settings and not isinstance(settings[key], str):
            raise JourneyError(f"settings.{key}: text")
    definition = PRESETS[name](settings)
    if "enabled" in body:
        definition["enabled"] = body["enabled"]
    return definition
