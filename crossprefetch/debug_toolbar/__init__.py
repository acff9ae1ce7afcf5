"""django-debug-toolbar integration: :class:`~crossprefetch.panels.CrossDBPrefetchPanel`.

Imported only by the toolbar, through ``DEBUG_TOOLBAR_PANELS``; nothing else in
crossprefetch imports it.
"""
