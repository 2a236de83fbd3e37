"""Request and response bodies: ``XCreate`` in, ``XUpdate`` for PATCH, ``XPublic`` out."""
