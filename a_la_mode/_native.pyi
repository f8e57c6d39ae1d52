PLACED: int
NEEDS_PYTHON: int
IN_THE_WAY: int
GRACE_MS: int

def run(
    path: bytes,
    argv: list[bytes],
    envp: list[bytes],
    log_path: bytes,
    timeout_ms: int,
    stop_fd: int,
) -> tuple[int, bool]: ...
def seal_and_place(
    staging: bytes,
    target: bytes,
    journal_fd: int,
    output_id: bytes,
    pause_before_rename: bool,
    ready_path: str | None,
) -> tuple[int, list[tuple[str, int, str]]]: ...
