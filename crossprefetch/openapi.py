"""drf-spectacular support; kept at this path for imports written against earlier releases.

The extension lives in :mod:`crossprefetch.rest_framework.openapi`.
"""

from __future__ import annotations

from crossprefetch.rest_framework.openapi import ContextLookupFieldExtension

__all__ = ["ContextLookupFieldExtension"]
