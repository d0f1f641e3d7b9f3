from . import hooks, optimizers  # noqa: F401  (registers hooks and optimizer constructors)
