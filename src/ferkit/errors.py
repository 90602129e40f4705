"""User-facing errors: raised for bad input, printed by the CLI without a traceback."""


class FerkitError(Exception):
    """An error the user can fix (bad path, bad file, bad config value); its message says how."""
