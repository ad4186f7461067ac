"""The PostgreSQL engine (`RECEIVER_DATABASE=postgresql://...`): several replicas on one database.

No writer or fold process and no inbox file: each replica's HTTP process commits callbacks
itself, batched (`intake`), and PostgreSQL's commit is the acknowledgement's proof. asyncpg is
imported only here, so SQLite installs never load it.
"""
