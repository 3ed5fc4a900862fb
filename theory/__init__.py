"""tvgrad.theory: the claims of 'On Task Vectors and Gradients' as falsifiable checks."""

SCHEMA_VERSION = 2
"""Version of the campaign documents (``theory.json``, ``clip_claims.json``): the campaign
writes it, the report refuses any other."""

DEFAULT_SEED = 20260824
"""The Hypothesis seed of ``tvgrad verify``, ``tvgrad verify-clip``, :func:`tvgrad.theory.campaign.verify`
and ``make verify`` (the Makefile's ``SEED``), so that they reproduce one another."""
