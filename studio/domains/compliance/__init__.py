"""Compliance: evidence-to-control links, applicability and the score projection."""
