"""The one exception type for mistakes a user can fix (bad files, bad specs, bad flags).

The CLI turns it into one sentence on stderr and exit code 2; the server into a 4xx JSON
error. Anything else is a bug in convscope and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input: the message is a complete sentence naming the file/field/layer and the numbers."""


class Interrupted(UserError):
    """Ctrl-C ended a command before it had anything to keep: the CLI says why in one sentence and exits
    130, the shell's code for SIGINT."""

    exit_code = 130
