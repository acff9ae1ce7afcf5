"""ForeignKeys across databases: relation paths resolved into hops, fetched hop by hop.

A relation path of a model (``"account"``, ``"account__region"``, reverse ``"tickets"``)
is a list of :class:`~crossprefetch._related.hops.Hop`; each hop becomes a
:class:`~crossprefetch.CrossDBPrefetch` fetched through
:func:`~crossprefetch.prefetch_cross_db` (so the fetch chain's cache, failure policy,
coalescing and key handling apply), and its rows fill Django's related-object caches.

* ``hops.py``: which relations a model has, and the path a name designates;
* ``tree.py``: the paths of one call as a tree, with the columns each level reads;
* ``fetch.py``: the tree fetched level by level, one query per database and model.
"""
