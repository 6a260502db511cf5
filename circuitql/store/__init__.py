"""Where indexed models are kept: the protocol every backend answers (``base``), the embedded
SQLite default (``sqlite``), Neo4j (``neo4j``, with ``neo4j_server`` to run one locally), and
the rule that picks one from a URI (``uri``)."""
