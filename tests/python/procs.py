"""Process helpers shared by the Python test scripts (tests/python and the unified runner in tests/spec): a
free local port for a member, and waiting for a condition with a timeout and a message instead of sleeping."""
import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout=30.0):
    """Polls `check` until it returns a true value (exceptions count as not yet); raises TimeoutError naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception:  # noqa: BLE001 - the member may not be listening yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
