"""distill: turn a large reasoning teacher into small reasoning students."""
__version__ = "0.1.0"
