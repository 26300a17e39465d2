"""The faults a user can mend (params, data, downloads, weights, full disks): a stage
reports them in one line and exits 2 instead of printing a traceback."""


class UserError(Exception):
    """A fault in the user's input or machine; the message names the file or parameter."""
