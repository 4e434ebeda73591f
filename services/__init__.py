"""The built-in service types, one module (or small package) each.

They register through the same entry-point group as third-party types
(``portsuite_services`` in pyproject.toml): one mechanism, dogfooded.
"""
