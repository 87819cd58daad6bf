"""The use cases: each a function or a small class over the store's repositories and the ports
of the outside systems. Routes, the worker and the CLI call these; these call ``store``,
``domain``, ``fhir`` and the adapters' ports (docs/architecture.md)."""
