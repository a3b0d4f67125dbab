"""dlt's log while our resources extract: the one warning our column hints make on purpose, kept out."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator


class _ExpectedArrowHintOverride(logging.Filter):
    """dlt warns on every run that a hint overrides the arrow type. The overrides here are deliberate
    (JSON columns are strings in arrow), so the warning would only teach people to ignore warnings.

    On dlt's logger only while one of our resources is being extracted (`expected_arrow_overrides`),
    never at import: a program embedding the sources keeps dlt's warnings about its own resources."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._active = 0  # runs of the resource under way (several pipelines may run in threads)

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        logger = logging.getLogger("dlt")
        with self._lock:
            self._active += 1
            logger.addFilter(self)
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    logger.removeFilter(self)


_EXPECTED_OVERRIDE = _ExpectedArrowHintOverride()


def expected_arrow_overrides() -> contextlib.AbstractContextManager[None]:
    """Within the block, dlt's warning that our hints override an arrow type is not logged."""
    return _EXPECTED_OVERRIDE.attached()
