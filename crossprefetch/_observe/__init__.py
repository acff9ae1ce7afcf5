"""Watching the queries a block sends: capture, origin and repeated shapes (N+1).

Shared by :mod:`crossprefetch.testing` and the debug-toolbar panel; imports neither.
"""
