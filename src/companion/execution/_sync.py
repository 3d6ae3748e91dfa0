"""`SyncExecutor`: the executor for synchronous callers (scripts, the CLI), on a private loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TypeVar

from companion.config import Settings
from companion.execution._executor import Executor
from companion.execution._models import ExecutionRequest, ExecutionResult, OutputEvent

__all__ = ["SyncExecutor"]

_T = TypeVar("_T")


class SyncExecutor:
    """`with SyncExecutor(settings) as executor: executor.run(request)`."""

    def __init__(self, settings: Settings) -> None:
        self._executor = Executor(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def executor(self) -> Executor:
        """The asynchronous executor underneath."""
        return self._executor

    def __enter__(self) -> SyncExecutor:
        self._thread.start()
        try:
            self.call(self._executor.start())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.call(self._executor.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def run(
        self, request: ExecutionRequest, on_output: Callable[[OutputEvent], None] | None = None
    ) -> ExecutionResult:
        """Run one snippet and block for its result; `on_output` (called on the executor's own
        thread) sees its output as it comes, as in `Executor.run`."""
        return self.call(self._executor.run(request, on_output=on_output))

    def call(self, coroutine: Coroutine[object, object, _T]) -> _T:
        """Run a coroutine of the executor on its loop and block for its result (for example
        `executor.call(executor.executor.sessions.create(tenant, request))`)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()
