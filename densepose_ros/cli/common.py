"""What every verb shares: exit codes, error lines and the WxH size format."""

from __future__ import annotations

import argparse
import re
import sys

# Exit codes of every verb: the user's input was wrong (a bad path or argument, missing or
# unreadable weights or inputs) ...
USER_ERROR = 2
# ... or the tool itself failed (an unexpected exception, a check the output did not pass).
INTERNAL_ERROR = 1


def user_error(verb: str, message: object) -> int:
    """Print ``densepose VERB: error: MESSAGE`` to stderr; the exit code for it."""
    print(f"densepose {verb}: error: {message}", file=sys.stderr)
    return USER_ERROR


def size_wxh(text: str) -> tuple[int, int]:
    """argparse type of every size option: 'WIDTHxHEIGHT' (e.g. 640x480) -> (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT with positive sides, e.g. 640x480, got {text!r}")
    return int(match[1]), int(match[2])
