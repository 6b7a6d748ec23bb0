"""Errors shared by the layers of the project.

:class:`OptionError` is what an option check raises (``validate_options`` hooks of the options, the
model, the networks and the datasets, and the registries for unknown names). ``BaseOptions.parse``
turns it into argparse's one-line error and exit status 2, before anything is built or written.

:class:`DataError` is what the data check before a run (``data.check_dataset``) raises: every bad
file of the split at once, before any network is built or any file of the run is written.
"""


def _show(value):
    """A value as typed on a command line; strings that would not read back are quoted."""
    if isinstance(value, str) and (value == "" or any(c.isspace() for c in value)):
        return repr(value)
    return str(value)


class OptionError(ValueError):
    """A command-line option has a value its component cannot use.

    ``flag``: the flag (``--D_steps_per_G``; the leading dashes are added when missing);
    ``value``: the value given (or resolved from defaults; None for a switch or a missing value, not
    shown in the message); ``allowed``: what would be accepted,
    either a phrase (``"must be a positive integer"``) or the sequence of known values (the message
    then lists them, introduced by ``kind``, e.g. ``"generator"``).

    ``str(err)`` is the whole message: ``--D_steps_per_G 0: must be a positive integer``.
    """

    def __init__(self, flag, value, allowed, kind=None):
        self.flag = flag if flag.startswith("-") else f"--{flag}"
        self.value = value
        self.allowed = allowed
        if isinstance(allowed, str):
            requirement = allowed
        else:
            known = ", ".join(str(a) for a in allowed)
            requirement = f"unknown {kind or 'value'}; known: {known}"
        shown = "" if value is None else f" {_show(value)}"
        super().__init__(f"{self.flag}{shown}: {requirement}")


def require_positive(opt, *names, kind="integer"):
    """Raise :class:`OptionError` for the first option of ``names`` whose value is not > 0."""
    for name in names:
        value = getattr(opt, name)
        if not value > 0:
            raise OptionError(name, value, f"must be a positive {kind}")


def require_non_negative(opt, *names, kind="integer"):
    """Raise :class:`OptionError` for the first option of ``names`` whose value is < 0."""
    for name in names:
        value = getattr(opt, name)
        if value < 0:
            raise OptionError(name, value, f"must be a non-negative {kind}")


class DataError(ValueError):
    """Files of a dataset that a run cannot use, found before the run starts (``data.check_dataset``).

    ``problems``: ``[(path, message)]``, every problem found, each message naming its file (the text
    the data loader would raise when it reached that file). ``str(err)`` is the whole report: a line
    with the counts, then one line per problem.
    """

    def __init__(self, message, problems):
        self.problems = list(problems)
        super().__init__(message)
