"""Django REST framework integration: view mixin, fields, filter backends, schema support."""
