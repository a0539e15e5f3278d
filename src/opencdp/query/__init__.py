"""Segment's query language (pure): the typed AST, the parser, and the reference semantics of a
definition over one profile. The batch compiler to SQL lives in ``storage/definition_sql.py``."""
