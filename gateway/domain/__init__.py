"""The domain: pure objects and rules. Imports nothing from adapters, web or database code."""
