from . import hooks, optimizers, runner  # noqa: F401  (registers hooks, optimizer constructors and SafeRunner)
