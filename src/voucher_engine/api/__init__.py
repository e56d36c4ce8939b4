"""HTTP: the FastAPI app, one router per domain, problem+json errors. The only package that knows HTTP."""
