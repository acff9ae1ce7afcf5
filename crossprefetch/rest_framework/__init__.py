"""Django REST framework integration: the view mixin, the serializer field, OpenAPI.

Everything here sits on top of the engine (:func:`crossprefetch.prefetch_cross_db`); the
engine and its fetch chain import nothing from DRF. Public names are re-exported from
:mod:`crossprefetch`.
"""
