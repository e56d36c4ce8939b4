"""Merchants: the registry (category, region, tags, status), their POS keys, and request signing."""
