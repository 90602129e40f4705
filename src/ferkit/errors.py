"""User-facing errors: raised for bad input, printed by the CLI without a traceback."""


class FerkitError(Exception):
    """An error the user can fix (bad path, bad file, bad config value); its message says how."""


class NothingReadError(FerkitError):
    """None of a command's inputs could be read (every image unreadable, no video frame): exit code 1."""
