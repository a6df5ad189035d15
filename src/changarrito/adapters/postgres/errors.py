"""Translation of psycopg errors into the domain's, at the adapter edge.

Messages name what failed and the SQLSTATE, never a parameter value or a connection password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg

from changarrito.domain.errors import (
    ChangarritoError,
    Conflict,
    NotFound,
    StorageError,
    StorageUnavailable,
    TenantNotFound,
    ValidationFailed,
)


def translate(exc: psycopg.Error) -> ChangarritoError:
    """The domain error for a driver error."""
    state = exc.sqlstate or ""
    primary = (exc.diag.message_primary or "").splitlines()[0:1]
    why = f" ({state}: {primary[0]})" if primary and state else f" ({state})" if state else ""
    if isinstance(exc, pg.UniqueViolation):
        return Conflict(f"this conflicts with a stored record{_constraint(exc)}")
    if isinstance(exc, pg.ForeignKeyViolation):
        if "tenant" in (exc.diag.constraint_name or ""):
            return TenantNotFound()
        return Conflict(f"a referenced record does not exist{_constraint(exc)}")
    if isinstance(exc, pg.InvalidTextRepresentation | pg.DataError):
        return ValidationFailed(f"the database rejected a value{why}")
    if isinstance(exc, pg.NoDataFound):
        return NotFound()
    if isinstance(exc, psycopg.InterfaceError) or is_unavailable(exc):
        return StorageUnavailable(f"the database cannot be reached: {_first_line(exc)}")
    return StorageError(f"the database failed{why}")


def is_unavailable(exc: psycopg.Error) -> bool:
    """True for a lost connection, a pool timeout or a server in trouble; false for an error
    about the statement (psycopg files some of those, such as SQLSTATE 39000, under
    ``OperationalError`` too)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return exc.sqlstate is None or exc.sqlstate[:2] in ("08", "53", "57", "58")


@contextmanager
def translated() -> Iterator[None]:
    """Re-raises any psycopg error inside the block as the matching domain error."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from exc


def _constraint(exc: psycopg.Error) -> str:
    name = exc.diag.constraint_name
    return f" ({name})" if name else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
