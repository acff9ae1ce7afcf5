"""``CrossDBPrefetch``: the immutable description of one cross-database lookup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.http import HttpRequest

from crossprefetch._cache.policy import CachePolicy
from crossprefetch._suggest import closest, did_you_mean
from crossprefetch.conf import conf, seconds_or_none

#: The values of ``on_error`` and ``CROSSPREFETCH["ON_ERROR"]``.
ON_ERROR_CHOICES = ("raise", "degrade")

Source: TypeAlias = (
    "type[models.Model] | str | models.QuerySet[Any] "
    "| Callable[[HttpRequest | None], models.QuerySet[Any]]"
)
KeyGetter: TypeAlias = "str | tuple[str, ...] | Callable[[Any], Any]"


class KeyArityError(ImproperlyConfigured):
    """The key has not as many parts as the remote fields it is matched against."""


class CrossDBPrefetch:
    """Describe how the objects being serialized reference rows in another database.

    Echoes Django's :class:`~django.db.models.Prefetch`: a spec is built once (usually in a
    class body, before the app registry is ready), validated eagerly where it can be, and
    resolved lazily: a model given as ``"app_label.Model"`` is looked up on first use.

    :param model: the remote side: a model class, an ``"app_label.Model"`` string, a
        QuerySet (its filters and ordering are kept), or ``callable(request) -> QuerySet``
        for per-request scoping.
    :param key: where each serialized object holds the reference: an attribute path
        (``"customer_id"``, ``"order.customer_id"``), a tuple of paths for a composite key,
        or ``callable(obj)`` returning the key (a tuple for a composite key).
    :param to_field: the remote field matched against the key, ``"pk"`` by default; a
        tuple for a composite key.
    :param fields: a projection: rows become dicts of these fields and only these columns
        (plus the matched field) are selected. ``None`` returns model instances.
    :param using: the database alias; ``None`` means the QuerySet's own database, which
        is the router's ``db_for_read`` unless the QuerySet says otherwise.
    :param many: ``True`` maps each key to the list of its rows (to-many, reverse
        references), in the QuerySet's order.
    :param cache: ``None`` (no caching), a timeout in seconds, or a
        :class:`~crossprefetch.CachePolicy`.
    :param on_error: when the database fails (refused connection, lost server, cancelled
        statement): ``"raise"`` the error, or ``"degrade"``: every key of the lookup reads
        as missing and the response goes on. ``None`` takes ``CROSSPREFETCH["ON_ERROR"]``.
    :param timeout: seconds after which the database cancels the lookup's query, handled
        by ``on_error``; ``0`` for none. ``None`` takes ``CROSSPREFETCH["TIMEOUT"]``.
    :param coalesce: seconds a lookup waits for concurrent requests of this process to
        share its query (see :doc:`/howto/coalescing`); ``None`` takes
        ``CROSSPREFETCH["COALESCE"]``, ``0`` never shares.
    """

    __slots__ = (
        "_model",
        "cache",
        "coalesce",
        "fields",
        "key",
        "many",
        "on_error",
        "source",
        "timeout",
        "to_field",
        "using",
    )

    source: Source
    key: KeyGetter
    to_field: tuple[str, ...]
    fields: tuple[str, ...] | None
    using: str | None
    many: bool
    cache: CachePolicy | None
    on_error: str | None
    timeout: float | None
    coalesce: float | None
    _model: type[models.Model] | None

    def __init__(
        self,
        model: Source,
        *,
        key: KeyGetter,
        to_field: str | Sequence[str] = "pk",
        fields: Sequence[str] | None = None,
        using: str | None = None,
        many: bool = False,
        cache: float | CachePolicy | None = None,
        on_error: str | None = None,
        timeout: float | None = None,
        coalesce: float | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "source", _validate_source(model))
        set_(self, "key", _validate_key(key))
        set_(self, "to_field", _names("to_field", to_field))
        set_(self, "fields", None if fields is None else _names("fields", fields))
        if using is not None and not isinstance(using, str):
            raise TypeError(f"CrossDBPrefetch(using={using!r}): using must be a database alias.")
        if using == "":
            raise ValueError(f"CrossDBPrefetch(using={using!r}): using must be a database alias.")
        set_(self, "using", using)
        if not isinstance(many, bool):
            raise TypeError(f"CrossDBPrefetch(many={many!r}): many must be True or False.")
        set_(self, "many", many)
        set_(self, "cache", _validate_cache(cache))
        set_(self, "on_error", _validate_on_error(on_error))
        set_(self, "timeout", _validate_timeout(timeout))
        set_(
            self,
            "coalesce",
            seconds_or_none(coalesce, "CrossDBPrefetch(coalesce=%r)", zero="0 never shares"),
        )
        set_(self, "_model", model if isinstance(model, type) else None)
        self._check_arity()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CrossDBPrefetch is immutable; cannot set {name!r}.")

    def __repr__(self) -> str:
        parts = [repr(self.source_label), f"key={self.key!r}"]
        if self.to_field != ("pk",):
            parts.append(f"to_field={_unwrap(self.to_field)!r}")
        if self.fields is not None:
            parts.append(f"fields={self.fields!r}")
        for name, default in (
            ("using", None),
            ("many", False),
            ("cache", None),
            ("on_error", None),
            ("timeout", None),
            ("coalesce", None),
        ):
            value = getattr(self, name)
            if value != default:
                parts.append(f"{name}={value!r}")
        return f"CrossDBPrefetch({', '.join(parts)})"

    @property
    def source_label(self) -> str:
        """The remote side as a person would name it in a message."""
        source = self.source
        if isinstance(source, str):
            return source
        if isinstance(source, type) and issubclass(source, models.Model):
            return source._meta.label
        if isinstance(source, models.QuerySet):
            return f"{source.model._meta.label} QuerySet"
        return getattr(source, "__qualname__", repr(source))

    @property
    def key_arity(self) -> int | None:
        """How many values the key holds, when the spec says so without running it."""
        if callable(self.key):
            return None
        return len(self.key) if isinstance(self.key, tuple) else 1

    def _check_arity(self) -> None:
        key_arity = self.key_arity
        if key_arity is None or self.to_field == ("pk",):
            return
        if key_arity != len(self.to_field):
            raise ValueError(
                f"{self!r}: key has {key_arity} part(s) but to_field has "
                f"{len(self.to_field)}; give key and to_field as tuples of the same length "
                "for a composite key."
            )

    def error_policy(self) -> str:
        """``on_error``, or ``CROSSPREFETCH["ON_ERROR"]`` when the spec does not say."""
        if self.on_error is not None:
            return self.on_error
        value = conf.ON_ERROR
        if value not in ON_ERROR_CHOICES:
            raise ImproperlyConfigured(
                f"CROSSPREFETCH['ON_ERROR'] = {value!r}: use 'raise' or 'degrade'."
            )
        return value

    def statement_timeout(self) -> float | None:
        """``timeout``, or ``CROSSPREFETCH["TIMEOUT"]``; ``None`` when there is none."""
        seconds = self.timeout if self.timeout is not None else conf.TIMEOUT
        return seconds or None

    # Resolution (needs the app registry) ------------------------------------------------

    def get_model(self) -> type[models.Model]:
        """The remote model, resolving an ``"app_label.Model"`` string on first use.

        A callable source has no model until it is called: use :meth:`get_queryset`.
        """
        if self._model is not None:
            return self._model
        source = self.source
        if isinstance(source, models.QuerySet):
            model = source.model
        elif isinstance(source, str):
            try:
                model = apps.get_model(source)
            except (LookupError, ValueError) as exc:
                raise ImproperlyConfigured(
                    f"{self!r}: {source!r} is not an installed model ({exc})."
                    + did_you_mean(source, model_labels())
                    + " Give the model as 'app_label.ModelName' of an app in INSTALLED_APPS, "
                    "or pass the class."
                ) from exc
        else:
            raise TypeError(f"{self!r}: a callable source has no model before it is called.")
        object.__setattr__(self, "_model", model)
        return model

    def get_queryset(self, request: HttpRequest | None = None) -> models.QuerySet[Any]:
        """A fresh QuerySet of the remote rows, on the spec's database."""
        source = self.source
        if isinstance(source, models.QuerySet):
            queryset = source.all()
        elif callable(source) and not isinstance(source, type):
            queryset = source(request)
            if not isinstance(queryset, models.QuerySet):
                raise TypeError(
                    f"{self!r}: the source callable returned {type(queryset).__name__}, "
                    "not a QuerySet. It must return e.g. Customer.objects.filter(...)."
                )
        else:
            queryset = self.get_model()._default_manager.all()
        result: models.QuerySet[Any] = queryset
        return result.using(self.using) if self.using is not None else result

    def get_match_fields(self, model: type[models.Model]) -> tuple[models.Field[Any, Any], ...]:
        """The concrete remote fields the key is matched against (``pk`` expanded)."""
        fields: list[models.Field[Any, Any]] = []
        for name in self.to_field:
            if name == "pk":
                pk = model._meta.pk
                assert pk is not None
                fields.extend(getattr(pk, "fields", None) or (pk,))
                continue
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                raise ImproperlyConfigured(
                    f"{self!r}: {model._meta.label} has no field {name!r} for to_field. "
                    f"Choose one of: {', '.join(_concrete_names(model))}."
                ) from None
            if not getattr(field, "concrete", False) or field.many_to_many:
                raise ImproperlyConfigured(
                    f"{self!r}: to_field {name!r} of {model._meta.label} is not a concrete "
                    "column; match a column of the remote table."
                )
            assert isinstance(field, models.Field)
            fields.append(field)
        key_arity = self.key_arity
        if key_arity is not None and key_arity != len(fields):
            raise KeyArityError(
                f"{self!r}: key has {key_arity} part(s) but {model._meta.label}'s "
                f"{'/'.join(f.name for f in fields)} has {len(fields)}; give key as a tuple "
                "of one attribute path per matched field."
            )
        return tuple(fields)

    def attr_hint(self, attr: str, model: type[models.Model] | None) -> str:
        """How to fix a field reading ``attr``, which this spec's rows do not hold."""
        source = self.source
        annotations = list(source.query.annotations) if isinstance(source, models.QuerySet) else []
        return attr_hint(attr, self.fields or (), model, annotations)

    def check_fields(self, model: type[models.Model]) -> None:
        """Fail clearly if a projected field does not exist on the remote model."""
        for name in self.fields or ():
            try:
                model._meta.get_field(name.split("__", 1)[0])
            except FieldDoesNotExist:
                head = name.split("__", 1)[0]
                raise ImproperlyConfigured(
                    f"{self!r}: {model._meta.label} has no field {head!r} in fields."
                    + did_you_mean(head, _concrete_names(model))
                    + f" Choose among: {', '.join(_concrete_names(model))}."
                ) from None


def attr_hint(
    attr: str,
    fields: tuple[str, ...],
    model: type[models.Model] | None,
    annotations: Sequence[str] = (),
) -> str:
    """How to fix a field reading ``attr`` from rows projected to ``fields``.

    Whichever name is misspelled is the one to fix: a selected name the remote model does
    not have, close to a real ``attr``, is the spec's typo; a close ``attr`` the model does
    not have is the field's; a real field of the model that is not selected is to be added;
    anything else gets the closest field of the model. Never "add" a name the model does
    not have.
    """
    head = attr.split(".", 1)[0]
    selected = ", ".join(map(repr, fields))
    close = closest(head, fields)
    if model is None:
        if close is not None:
            return (
                f"The spec selects {close!r} and the field reads {head!r}: correct whichever "
                f"is misspelled (the spec selects {selected})."
            )
        return f"Read one of the fields the spec selects ({selected}), or add {head!r} to them."
    names = {f.name for f in model._meta.get_fields()} | {"pk", *annotations}
    real = head in names
    if close is not None and real and close not in names:
        fixed = tuple(head if name == close else name for name in fields)
        return (
            f"The spec's fields name {close!r}, which {model._meta.label} does not have; "
            f"did you mean {head!r}? Give fields={fixed!r}."
        )
    if close is not None and not real:
        return f"Did you mean {close!r}? The spec selects {selected}."
    if real:
        return f"Add {head!r} to the spec's fields (it selects {selected})."
    near = closest(head, _concrete_names(model))
    return (
        f"{model._meta.label} has no field {head!r}"
        + (f"; did you mean {near!r}?" if near is not None else ".")
        + f" The spec selects {selected}."
    )


def model_labels() -> list[str]:
    """``"app_label.ModelName"`` of every installed model: what a model label may name."""
    return [model._meta.label for model in apps.get_models()]


def _concrete_names(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields]


def _unwrap(names: tuple[str, ...]) -> str | tuple[str, ...]:
    return names[0] if len(names) == 1 else names


def _validate_source(model: Any) -> Source:
    if isinstance(model, type) and issubclass(model, models.Model):
        return model
    if isinstance(model, str):
        if model.count(".") != 1 or not all(model.split(".")):
            raise ValueError(
                f"CrossDBPrefetch({model!r}): give the model as 'app_label.ModelName'."
            )
        return model
    if isinstance(model, models.QuerySet):
        return model
    if callable(model) and not isinstance(model, type):
        return model  # type: ignore[no-any-return]
    raise TypeError(
        f"CrossDBPrefetch({model!r}): the first argument must be a model class, an "
        "'app_label.ModelName' string, a QuerySet, or a callable(request) returning a QuerySet."
    )


def _validate_key(key: Any) -> KeyGetter:
    usage = (
        f"CrossDBPrefetch(key={key!r}): key must be an attribute path such as 'customer_id', "
        "a tuple of paths for a composite key, or a callable(obj)."
    )
    if isinstance(key, str):
        if key and all(key.split(".")):
            return key
        raise ValueError(usage)
    if isinstance(key, tuple) and all(isinstance(k, str) for k in key):
        if key and all(k and all(k.split(".")) for k in key):
            return key
        raise ValueError(usage)
    if callable(key):
        return key  # type: ignore[no-any-return]
    raise TypeError(usage)


def _names(argument: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        if argument == "fields":
            raise TypeError(
                f"CrossDBPrefetch(fields={value!r}): fields must be a tuple of field names, "
                f"e.g. fields=({value!r},)."
            )
        value = (value,)
    usage = (
        f"CrossDBPrefetch({argument}={value!r}): {argument} must be a non-empty tuple "
        "of field names."
    )
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(usage)
    if not value or not all(value):
        raise ValueError(usage)
    if len(set(value)) != len(value):
        raise ValueError(f"CrossDBPrefetch({argument}={value!r}): a field name is repeated.")
    return tuple(value)


def _validate_on_error(on_error: Any) -> str | None:
    if on_error is None or on_error in ON_ERROR_CHOICES:
        return on_error  # type: ignore[no-any-return]
    raise (ValueError if isinstance(on_error, str) else TypeError)(
        f"CrossDBPrefetch(on_error={on_error!r}): on_error must be 'raise' (the error "
        "propagates) or 'degrade' (the lookup's keys read as missing), or None for "
        "CROSSPREFETCH['ON_ERROR']."
    )


def _validate_timeout(timeout: Any) -> float | None:
    seconds_or_none(timeout, "CrossDBPrefetch(timeout=%r)", zero="0 for none")
    return timeout  # type: ignore[no-any-return]


def _validate_cache(cache: Any) -> CachePolicy | None:
    if cache is None or isinstance(cache, CachePolicy):
        return cache
    if isinstance(cache, int | float) and not isinstance(cache, bool):
        return CachePolicy(cache)
    raise TypeError(
        f"CrossDBPrefetch(cache={cache!r}): cache must be None, a timeout in seconds, "
        "or a CachePolicy."
    )
