"""Frameworks: versioned control catalogs, the control graph and cross-framework mappings."""
