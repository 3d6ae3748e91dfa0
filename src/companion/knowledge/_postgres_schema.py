"""The PostgreSQL store's schema: versioned migrations applied at start under an advisory lock.

Full text is searched in each node's tantivy index, derived from these tables (see
`_postgres_fulltext.py`): each collection has a `version` that every write bumps, and `kb_changes`
says which documents each version touched. Vectors are always kept as float32 `bytea`; a `vector`
column with an HNSW index is added only when the server has the pgvector extension.
"""

from __future__ import annotations

__all__ = ["BASE_MIGRATIONS", "PGVECTOR_MIGRATION"]

BASE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE kb_collections (
        key BIGSERIAL PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        model TEXT, model_version TEXT, dimension INTEGER,
        UNIQUE (tenant, name)
    );
    CREATE TABLE kb_documents (
        key BIGSERIAL PRIMARY KEY,
        collection_key BIGINT NOT NULL REFERENCES kb_collections (key) ON DELETE CASCADE,
        id TEXT NOT NULL,
        title TEXT,
        text TEXT NOT NULL,
        metadata JSONB NOT NULL DEFAULT '{}',
        source TEXT,
        content_hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        UNIQUE (collection_key, id)
    );
    CREATE TABLE kb_chunks (
        key BIGSERIAL PRIMARY KEY,
        document_key BIGINT NOT NULL REFERENCES kb_documents (key) ON DELETE CASCADE,
        collection_key BIGINT NOT NULL,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        terms TSVECTOR NOT NULL,
        vector_bytes BYTEA
    );
    CREATE INDEX kb_chunks_terms ON kb_chunks USING GIN (terms);
    CREATE INDEX kb_chunks_document ON kb_chunks (document_key);
    CREATE INDEX kb_chunks_collection ON kb_chunks (collection_key)
    """,
    # The embedding queue's work list: chunks still without a vector, found without a table scan.
    """
    CREATE INDEX kb_chunks_pending_vector ON kb_chunks (collection_key, key)
        WHERE vector_bytes IS NULL
    """,
    # BM25 moves to per-node tantivy indexes that follow these tables; `ts_rank_cd` ranked at a
    # third of BM25's nDCG, so its tsvector and GIN index only cost writes now.
    """
    ALTER TABLE kb_collections ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE kb_changes (
        collection_key BIGINT NOT NULL REFERENCES kb_collections (key) ON DELETE CASCADE,
        document_key BIGINT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (collection_key, document_key)
    );
    CREATE INDEX kb_changes_version ON kb_changes (collection_key, version);
    CREATE TABLE kb_instance (id TEXT PRIMARY KEY);
    INSERT INTO kb_instance (id) VALUES (gen_random_uuid()::text);
    DROP INDEX kb_chunks_terms;
    DROP INDEX kb_chunks_collection;
    CREATE INDEX kb_chunks_collection_key ON kb_chunks (collection_key, key);
    ALTER TABLE kb_chunks DROP COLUMN terms
    """,
    # Where a chunk is, for citations: its PDF page and the headings above it.
    """
    ALTER TABLE kb_chunks ADD COLUMN page INTEGER;
    ALTER TABLE kb_chunks ADD COLUMN headings JSONB
    """,
)

# MiniLM's 384 dimensions: pgvector's HNSW index needs a fixed dimension.
PGVECTOR_MIGRATION = """
    CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
    ALTER TABLE kb_chunks ADD COLUMN IF NOT EXISTS embedding vector(384);
    CREATE INDEX IF NOT EXISTS kb_chunks_embedding ON kb_chunks
        USING hnsw (embedding vector_cosine_ops)
"""
