"""The project's base error for bad input: what a user can fix, named by file or key.

Every package's own input errors (images, manifests, settings, checkpoints, registrations)
derive from `InputError`, so `liverbench.cli.run_cli` reports them all the same way: one line,
exit status 2, no traceback.
"""


class InputError(ValueError):
    """Bad input a user can fix (a file, a key, a value); the message names it."""


class ConfigError(InputError):
    """A configuration that does not fit the schema or a method's settings; names the key."""


class PairFailure(InputError):
    """A method cannot process this one pair (elastix did not converge, a phase-1 mask is
    empty): inside a run over many pairs it becomes a recorded failure
    (`liverbench.runtime.record_failure`), not a crashed rule."""
