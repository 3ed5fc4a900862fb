"""tvgrad.theory: the claims of 'On Task Vectors and Gradients' as falsifiable checks."""

SCHEMA_VERSION = 2
"""Version of the campaign documents (``theory.json``, ``clip_claims.json``): the campaign
writes it, the report refuses any other."""
