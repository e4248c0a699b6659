"""Rendering in pmap's formats: listings, the -X table, diffs, and pmap's names for mappings.

Import the modules themselves; this package imports none of them.
"""
