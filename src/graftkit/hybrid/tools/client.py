"""A long-lived connection to one MCP server started by command, usable from plain code.

The official ``mcp`` client is async; ``MCPServerProcess`` runs it on an event loop in a
background thread and keeps one session open, so each tool call costs a round trip, not
a process start. Every wait is bounded by ``timeout``: a server that hangs or crashes
turns into a ``ToolError`` with a message that says which, never a stuck caller.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

CALCULATOR_COMMAND = [sys.executable, "-m", "graftkit.hybrid.tools.server"]


class ToolError(RuntimeError):
    """A tool call failed: unknown tool, bad arguments, server crash, hang or tool error."""


class MCPServerProcess:
    """``command``: a list (argv) or a shell-like string. Use as a context manager or call close()."""

    def __init__(self, command: Sequence[str] | str, timeout: float = 10.0, env: dict[str, str] | None = None,
                 start_timeout: float = 60.0) -> None:
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.command:
            raise ToolError("empty MCP server command")
        self.timeout = timeout
        self.start_timeout = start_timeout  # a Python server importing the mcp SDK takes seconds on a busy machine
        self.env = env
        self.tools: dict[str, dict[str, Any]] = {}  # name -> input JSON schema
        self.broken: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="mcp-client")
        self._ready: asyncio.Future | None = None
        self._closing: asyncio.Event | None = None
        self._client: Any = None
        self._task: Any = None

    def __repr__(self) -> str:
        return f"MCPServerProcess({' '.join(self.command)!r})"

    # -- lifecycle -----------------------------------------------------------------------
    async def _serve(self) -> None:
        from mcp import Client, StdioServerParameters

        params = StdioServerParameters(command=self.command[0], args=self.command[1:], env=self.env)
        try:
            async with Client(params) as client:
                listed = await client.list_tools()
                self.tools = {t.name: dict(t.input_schema or {}) for t in listed.tools}
                self._client = client
                self._ready.set_result(True)
                await self._closing.wait()
        except BaseException as exc:  # the server failed to start or died: report, do not raise in the loop
            if not self._ready.done():
                self._ready.set_exception(ToolError(f"MCP server {' '.join(self.command)!r} failed: {exc!r}"))
            else:
                self.broken = f"MCP server exited: {exc!r}"

    def start(self) -> MCPServerProcess:
        self._thread.start()

        async def begin() -> None:
            self._ready = self._loop.create_future()
            self._closing = asyncio.Event()
            self._task = self._loop.create_task(self._serve())
            await asyncio.wait_for(asyncio.shield(self._ready), self.start_timeout)

        try:
            asyncio.run_coroutine_threadsafe(begin(), self._loop).result(self.start_timeout + 1)
        except (asyncio.TimeoutError, FutureTimeout, TimeoutError):
            self.close()
            raise ToolError(f"MCP server {' '.join(self.command)!r} did not answer within {self.start_timeout:g} s") from None
        except ToolError:
            self.close()
            raise
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            if self._closing is not None:
                self._closing.set()
            if self._task is not None:
                try:
                    await asyncio.wait_for(self._task, 5)
                except BaseException:
                    self._task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(7)
        except BaseException:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2)

    def __enter__(self) -> MCPServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------
    def call(self, name: str, arguments: dict[str, Any], timeout: float | None = None) -> str:
        """The tool's text result; ToolError on a tool error, crash or timeout."""
        if self.broken:
            raise ToolError(self.broken)
        if self._client is None:
            raise ToolError(f"MCP server {' '.join(self.command)!r} is not running")
        limit = self.timeout if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(self._client.call_tool(name, arguments), limit), self._loop)
        try:
            result = future.result(limit + 1)
        except (asyncio.TimeoutError, FutureTimeout, TimeoutError):
            future.cancel()
            self.broken = f"tool {name!r} timed out after {limit:g} s (server hung); server disabled"
            raise ToolError(self.broken) from None
        except ToolError:
            raise
        except Exception as exc:
            self.broken = f"MCP server crashed during {name!r}: {type(exc).__name__}: {exc}"
            raise ToolError(self.broken) from None
        text = " ".join(getattr(c, "text", "") for c in result.content).strip()
        if result.is_error:
            raise ToolError(text or f"tool {name!r} failed")
        return text
