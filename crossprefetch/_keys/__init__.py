"""Keys: read off objects, normalised to the remote field's type, sent to a database.

* :mod:`.normalize` reads keys off the serialized objects and normalises them (``"42"``
  to ``42``; a value the field cannot hold is a missing reference, never sent);
* :mod:`.sql` filters a QuerySet by a (possibly huge) key set in as few queries as the
  backend allows; :mod:`.packet` sizes MySQL/MariaDB statements;
* :mod:`.matching` matches keys as the remote database compares them (collations);
* :mod:`.keyset` sends a whole key set, or key positions, as ONE parameter (filters and
  orderings by remote rows).
"""
