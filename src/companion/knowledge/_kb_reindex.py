"""`KnowledgeBase`'s re-embedding: every chunk of a collection again with the current embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from companion.knowledge._embedder import to_float32_bytes
from companion.knowledge._errors import EmbedderRequired
from companion.knowledge._kb_base import EMBEDDER_HINT, KbBase
from companion.knowledge._validation import check_name, check_tenant

__all__ = ["KbReindex"]


class KbReindex(KbBase):
    """The re-embedding method of `KnowledgeBase`."""

    # -- re-embedding --------------------------------------------------------------------------

    async def reindex(
        self,
        tenant: str,
        collection: str,
        *,
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Re-embed every chunk with the current embedder and record its model; return the count."""
        if self.embedder is None:
            raise EmbedderRequired(f"reindex needs an embedding model: {EMBEDDER_HINT}")
        check_tenant(tenant)
        check_name(collection)
        await self.store.get_collection(tenant, collection)
        embedder = self.embedder
        after, done = 0, 0
        while True:
            rows = await self.store.chunks_to_embed(tenant, collection, after, batch_size)
            if not rows:
                break
            vectors = await asyncio.to_thread(embedder.embed, [text for _, text in rows])
            await self.store.set_vectors(
                tenant,
                collection,
                [(key, to_float32_bytes(v)) for (key, _), v in zip(rows, vectors, strict=True)],
            )
            after, done = rows[-1][0], done + len(rows)
            if on_progress is not None:
                on_progress(done)
        await self.store.set_embedding(tenant, collection, embedder.info)
        self._invalidate(tenant, collection)
        return done
