"""The PostgreSQL store's schema: versioned migrations applied at start under an advisory lock.

Full text uses a `tsvector` of the same analyzed terms the embedded index uses (tantivy's English
stemmer, computed in Python, stored with the `simple` configuration), so both stores match the same
words. Vectors are always kept as float32 `bytea`; a `vector` column with an HNSW index is added only
when the server has the pgvector extension.
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
)

# MiniLM's 384 dimensions: pgvector's HNSW index needs a fixed dimension.
PGVECTOR_MIGRATION = """
    CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
    ALTER TABLE kb_chunks ADD COLUMN IF NOT EXISTS embedding vector(384);
    CREATE INDEX IF NOT EXISTS kb_chunks_embedding ON kb_chunks
        USING hnsw (embedding vector_cosine_ops)
"""
