"""Issuers: the government bodies that run campaigns and fund them from their fiscal accounts (财政账户)."""
