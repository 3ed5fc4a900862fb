"""tvgrad.theory: the claims of 'On Task Vectors and Gradients' as falsifiable checks."""

__version__ = "0.1.0"
