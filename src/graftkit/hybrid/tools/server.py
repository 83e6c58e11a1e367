"""graftkit's built-in MCP server: one tool, ``calculate``, over stdio.

Run it as ``python -m graftkit.hybrid.tools.server``; any MCP client (graftkit's
``generate_with_tools`` included) can start it by command.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from graftkit.hybrid.tools.calculator import CalculatorError, calculate, format_result

server = MCPServer("graftkit-calculator")


@server.tool(name="calculate")
def calculate_tool(expression: str) -> str:
    """Evaluate arithmetic: numbers, + - * / // % ** and parentheses (nothing else runs)."""
    try:
        return format_result(calculate(expression))
    except CalculatorError as exc:
        raise ToolError(f"calculator: {exc}") from None  # a deliberate tool error: its text reaches the client



def main() -> None:
    server.run()


if __name__ == "__main__":
    main()
