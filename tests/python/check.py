"""Tiny assertion helpers shared by the client scripts.

Every failure exits non-zero with one clear line on stderr, so the Rust test that runs the
script can show what the client saw.
"""

import sys
import time


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def step(message):
    """Logs progress, so a timeout shows where the script was."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(predicate, what, timeout_s=15.0):
    """Polls predicate() until it is true; fails naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def bootstrap_from_argv():
    if len(sys.argv) < 2:
        fail(f"usage: {sys.argv[0]} BOOTSTRAP (host:port)")
    return sys.argv[1]


def message_for(index):
    """Deterministic key, value and headers for record `index`; bytes chosen to include every
    byte value somewhere, so a text-mangling bug would show."""
    key = f"key-{index % 97}".encode()
    value = bytes((index * 7 + i) % 256 for i in range(index % 200)) + index.to_bytes(4, "big")
    headers = [("idx", str(index).encode()), ("bin", bytes([index % 256, 0, 255]))]
    return key, value, headers
