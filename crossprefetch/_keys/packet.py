"""How many keys fit one MySQL/MariaDB statement.

mysqlclient interpolates parameters into the SQL on the client, so MySQL's limit of
65,535 placeholders per prepared statement never applies: what bounds a statement is
the server's ``max_allowed_packet`` (16 MiB by default on MariaDB, 64 MiB on MySQL 8),
the size of the whole statement in bytes. Key sets are split by that size and nothing
else, so a page of 50,000 integer or UUID keys is one query.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

from django.db.backends.base.base import BaseDatabaseWrapper

#: Below this many bytes of keys no server is asked: every MySQL and MariaDB version
#: Django supports defaults to a ``max_allowed_packet`` of 16 MiB or more, and one
#: below 4 MiB is a deliberate choice that no application serving pages can live with.
SAFE_PACKET: Final = 4 * 1024 * 1024
#: Bytes kept for the rest of the statement (SELECT list, the QuerySet's own filters).
_HEADROOM: Final = 64 * 1024
#: ``", "`` between two keys, or the ``(``, ``)`` and ``, `` around a composite one.
_SEPARATOR: Final = 2

_server_limits: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def max_allowed_packet(connection: BaseDatabaseWrapper) -> int:
    """The server's ``max_allowed_packet`` for this connection, asked once per connection.

    The session value is fixed when the connection opens, so it is cached on the DB-API
    connection and asked again only after a reconnect.
    """
    connection.ensure_connection()
    raw = connection.connection
    limit = _server_limits.get(raw)
    if limit is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            (value,) = cursor.fetchone()
        limit = _server_limits[raw] = int(value)
    return limit


def _upper_bound(value: Any) -> int:
    """Bytes a value can take as an escaped literal, without asking the driver."""
    if type(value) is int:
        return len(str(value))
    if isinstance(value, str):
        return 2 * len(value.encode()) + 2  # every byte escaped, plus the quotes
    if isinstance(value, bytes):
        return 2 * len(value) + 10  # _binary'...'
    return 2 * len(str(value)) + 2


def chunk_sizes(
    connection: BaseDatabaseWrapper,
    values: Sequence[Sequence[Any]],
    literal: Callable[[Any], bytes] | None = None,
) -> list[int]:
    """How many keys each statement carries, in order; one entry whenever they all fit.

    ``values`` holds the keys' database values, one sequence per key (its parts). The
    server is asked for its limit only when the keys may not fit :data:`SAFE_PACKET`,
    and the exact escaped sizes are computed only when they may not fit the server's.
    """
    arity = len(values[0]) if values else 1
    separator = _SEPARATOR * (1 if arity == 1 else 2)
    bound = sum(_upper_bound(part) for key in values for part in key)
    bound += len(values) * (separator + _SEPARATOR * (arity - 1))
    if bound <= SAFE_PACKET - _HEADROOM:
        return [len(values)]
    budget = max_allowed_packet(connection) - _HEADROOM
    if bound <= budget:
        return [len(values)]
    escape = literal or connection.connection.literal
    sizes: list[int] = []
    used = count = 0
    for key in values:
        size = sum(len(escape(part)) for part in key) + separator + _SEPARATOR * (arity - 1)
        if count and used + size > budget:
            sizes.append(count)
            used = count = 0
        used += size
        count += 1
    if count:
        sizes.append(count)
    return sizes
