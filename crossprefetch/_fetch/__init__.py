"""The fetch step: a chain of layers between a group of plans and its rows.

Every layer has one interface, :class:`~crossprefetch._fetch.base.Fetch`: a
:class:`~crossprefetch._groups.Group` in, :class:`~crossprefetch._fetch.base.Fetched` out
(rows per plan, and the queries it took). The database query is at the bottom
(:mod:`.database`); each layer above it wraps the next one, like WSGI middleware, and
passes the group through untouched when its feature is off for that group. The chain is
assembled in :mod:`.chain`, outermost layer first.
"""
