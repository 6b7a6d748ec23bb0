"""Errors shared by the layers of the project.

A *user error* is a problem the person running a command can fix without touching the code: an
option value, a missing data folder or weight file, a run folder in the way, a checkpoint that does
not fit the options. Every such error is a :class:`UserError`; the ``cli()`` entry points of
``train.py``, ``test.py`` and ``evaluate.py`` report it as one line, ``<prog>: error: <message>``, on
stderr with exit status 2 (argparse's convention) instead of a traceback (:func:`run_cli`).
Anything else is a bug and keeps its traceback; ``--verbose`` shows the traceback of user errors too.

- :class:`UserError`: the base.
- :class:`OptionError`: an option value its component cannot use (``validate_options`` hooks of the
  options, the model, the networks and the datasets, and the registries for unknown names).
  ``BaseOptions.parse`` turns it into argparse's one-line error before anything is built or written.
- :class:`MissingFileError` (also a ``FileNotFoundError``): a file or folder the user provides is not
  there (data folders, pretrained weights, checkpoints to load).
- :class:`CheckpointError` (also a ``RuntimeError``): a checkpoint that cannot be used with the
  options (does not fit the networks, unreadable, another format).
- :class:`DataError` (also a ``ValueError``): files of the dataset a run cannot use, found by the
  data check before a run (``data.check_dataset``): every bad file of the split at once.
- ``train.RunExistsError``: the run folder already holds a run.

A plain ``FileNotFoundError`` naming a user's file (raised by library code or the data loaders) is
reported the same way by :func:`run_cli`.
"""

import json
import os
import sys
import time


def _show(value):
    """A value as typed on a command line; strings that would not read back are quoted."""
    if isinstance(value, str) and (value == "" or any(c.isspace() for c in value)):
        return repr(value)
    return str(value)


class UserError(Exception):
    """Base of the errors the user fixes (see the module docstring); ``str(err)`` is the whole message."""


class OptionError(UserError, ValueError):
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


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user provides (data, pretrained weights, a checkpoint) does not exist.

    The message names the path and says what should be there or how to provide it."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used with the options: it does not fit the networks they
    build, it is unreadable or it has another format. The message names the file."""


USER_ERRORS = (UserError, FileNotFoundError)


def one_line(err):
    """The message of ``err`` on one line (line breaks become '; ')."""
    text = str(err).strip() or type(err).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _tell_torchrun(message):
    """Under torchrun: put ``message`` into the worker's error file (``$TORCHELASTIC_ERROR_FILE``, the
    format torch.distributed.elastic reads), so torchrun's failure summary, printed after the workers'
    output, ends with the message (as the 'traceback' of the root cause) instead of 'N/A'."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            # The layout of torch.distributed.elastic's own error files; its summary shows py_callstack.
            json.dump({"message": {"message": message, "extraInfo": {
                "py_callstack": message, "timestamp": str(int(time.time()))}}}, f)
    except OSError:
        pass  # the summary then says N/A; the message is on stderr in any case


def run_cli(prog, main, argv=None, also=()):
    """Run ``main(argv)``; report a user error (:data:`USER_ERRORS`, and the exception classes in
    ``also``) as ``<prog>: error: <message>`` on stderr and return exit status 2. Other exceptions
    propagate (a bug: its traceback is wanted). With ``--verbose`` among the arguments user errors
    propagate too, with their traceback.

    Returns ``main``'s result when it is an int (an exit status), else 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = main(argv)
    except USER_ERRORS + tuple(also) as err:
        if "--verbose" in argv:
            raise
        # A data report lists one bad file per line; any other message is put on one line.
        message = f"{prog}: error: {str(err).strip() if isinstance(err, DataError) else one_line(err)}"
        sys.stdout.flush()
        print(message, file=sys.stderr, flush=True)
        _tell_torchrun(message)
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


class DataError(UserError, ValueError):
    """Files of a dataset that a run cannot use, found before the run starts (``data.check_dataset``).

    ``problems``: ``[(path, message)]``, every problem found, each message naming its file (the text
    the data loader would raise when it reached that file). ``str(err)`` is the whole report: a line
    with the counts, then one line per problem.
    """

    def __init__(self, message, problems):
        self.problems = list(problems)
        super().__init__(message)
