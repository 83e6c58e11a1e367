"""An MCP server whose only tool kills its own process (tests: a crashed server)."""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("crash")


@server.tool(name="crash")
def crash(expression: str) -> str:
    """Exits the server process abruptly."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
