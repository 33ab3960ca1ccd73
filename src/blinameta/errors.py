"""Errors that reach the user as a message, never as a traceback."""

from __future__ import annotations

__all__ = ["UserError", "EXIT_USER_ERROR"]

#: Exit status of every command for an error in the user's input.
EXIT_USER_ERROR = 2


class UserError(Exception):
    """An error in the user's input (file, column, option, value).

    The message must name where the problem is (file and line and field, or row and column)
    and what is wrong. The command line prints it on one line to standard error and exits
    with status 2.
    """
