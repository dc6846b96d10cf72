"""What both ``proxy/`` and ``acl/`` build on, below either of them: the wire-level
UPDATE model (:mod:`core.update`) and the configuration schema helper
(:mod:`core.schema`). Nothing here imports another package of the project."""
