"""Privacy and access, the pure core: roles and what they may do, workspace privacy settings,
regulation types and statuses, consent, self-service link tokens.

Nothing here touches a database or the web; ``storage/``, ``services/`` and ``web/`` use it."""
