"""An MCP server whose only tool never returns (tests: a hung server)."""

import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("hang")


@server.tool(name="hang")
def hang(expression: str) -> str:
    """Sleeps far longer than any test timeout."""
    time.sleep(3600)
    return "never"


if __name__ == "__main__":
    server.run()
