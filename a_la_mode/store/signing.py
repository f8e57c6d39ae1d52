"""Signed success markers: a reader refuses a marker it did not sign.

Whoever can write to a store can forge a result there. With a key (a file named by
``$ALAMODE_SIGNING_KEY_FILE``, shared by the machines that trust each other), every marker a
runner writes carries an HMAC-SHA256 of its content, and a marker without a valid one counts
as absent: its task runs again, and ``verify`` names it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from a_la_mode.errors import StoreError

KEY_VARIABLE = "ALAMODE_SIGNING_KEY_FILE"
SIGNATURE = "signature"


def signing_key() -> bytes | None:
    """The key in the file ``$ALAMODE_SIGNING_KEY_FILE`` names; None when it is unset."""
    path = os.environ.get(KEY_VARIABLE)
    if not path:
        return None
    try:
        key = Path(path).read_bytes().strip()
    except OSError as err:
        raise StoreError(f"{KEY_VARIABLE}={path}: cannot read the key ({err.strerror})") from None
    if len(key) < 16:
        raise StoreError(f"{KEY_VARIABLE}={path}: the key is under 16 bytes; make a longer one")
    return key


def _content(marker: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in marker.items() if k != SIGNATURE}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def sign(marker: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``marker`` with its signature."""
    digest = hmac.new(key, _content(marker), hashlib.sha256).hexdigest()
    return {**marker, SIGNATURE: f"hmac-sha256:{digest}"}


def signed_by(marker: dict[str, Any], key: bytes) -> bool:
    """Whether ``marker`` carries a valid signature made with ``key``."""
    given = marker.get(SIGNATURE)
    return isinstance(given, str) and hmac.compare_digest(given, sign(marker, key)[SIGNATURE])
