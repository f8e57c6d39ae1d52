from typing import Any

def decode(
    data: bytes, corrupt: type[Exception]
) -> tuple[dict[str, Any], str | None, tuple[str, str] | None]: ...
