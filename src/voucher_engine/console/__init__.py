"""The web console (控制台) at `/console`: static pages for governments, auditors and the operator.

Plain JavaScript modules and Apache ECharts, all in `static/` and served by the engine itself (nothing from another
host: government networks are often offline). The pages call the public API with the user's own bearer token, kept
in the tab's session storage; they have no other way in. See docs/console.md.
"""
