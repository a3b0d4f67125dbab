"""What a failed dlt step says: the one line a person on call reads, or the interruption behind it."""

from __future__ import annotations

from ..client.errors import ApiError, error_line
from .interrupt import interruption


def cause(error: BaseException) -> str:
    """The innermost meaningful message: our ApiError's one line, else the root exception's first line."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ApiError):
            return str(seen)
        if seen.__cause__ is None and seen.__context__ is None:
            break
        seen = seen.__cause__ or seen.__context__
    root = seen or error
    return error_line(root, with_type=True)


def reraise_interruption(error: BaseException) -> None:
    """Raise the KeyboardInterrupt or Terminated that dlt wrapped in `error`, if there is one."""
    if (stop := interruption(error)) is not None:
        raise stop from None


__all__ = ["cause", "reraise_interruption"]
