"""Who is calling: bearer tokens for admin, gov and auditor, stored hashed; roles and issuer scopes."""
