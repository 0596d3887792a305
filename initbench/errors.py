"""The one exception the CLI turns into a clean message and a non-zero exit."""


class InitbenchError(Exception):
    """A problem the user can fix (bad input, missing data, unwritable folder).

    The message is shown as one paragraph, without a traceback, and the command
    exits with status 1.
    """
