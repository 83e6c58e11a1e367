"""Tool use through real MCP server processes over stdio."""

import sys
import time
from pathlib import Path

import pytest

from graftkit.hybrid.tools.client import CALCULATOR_COMMAND, MCPServerProcess, ToolError
from graftkit.hybrid.tools.generate import generate_with_tools

from .conftest import ScriptedModel

SERVERS = Path(__file__).parent / "servers"


@pytest.fixture(scope="module")
def calculator():
    with MCPServerProcess(CALCULATOR_COMMAND, timeout=20) as server:
        yield server


def test_calculator_server_over_stdio(calculator):
    assert "calculate" in calculator.tools
    assert calculator.call("calculate", {"expression": "37*41"}) == "1517"
    with pytest.raises(ToolError, match="found Call"):
        calculator.call("calculate", {"expression": "__import__('os').system('touch /tmp/pwned')"})
    with pytest.raises(ToolError, match="exponent"):
        calculator.call("calculate", {"expression": "2**99999999"})
    assert calculator.call("calculate", {"expression": "1+1"}) == "2"  # still alive after refusals


def test_generation_runs_tool_calls_and_continues(calculator, char_tokenizer):
    model = ScriptedModel(["A: <tool:calculate>37*41</tool>", " so 1517.\nQ: next"])
    out = generate_with_tools(model, "Q: 37*41?\n", char_tokenizer, [calculator], max_new_tokens=200, stop=["\nQ:"])
    assert out.text == "A: <tool:calculate>37*41</tool><result>1517</result> so 1517."
    assert [(c.name, c.result, c.error) for c in out.calls] == [("calculate", "1517", False)]


@pytest.mark.parametrize("reply,message", [
    ("<tool>1+1</tool>", "malformed tool call"),
    ("<tool:search>cats</tool>", "unknown tool 'search' (available: calculate)"),
    ("<tool:calculate>__import__('os')</tool>", "found Call"),
    ("<tool:calculate>" + "(" * 120 + "1" + ")" * 120 + "</tool>", "nested"),
    ("<tool:calculate>" + "9" * 600 + "</tool>", "longer than"),
    ('<tool:calculate>{"expression": </tool>', "bad arguments"),
])
def test_bad_tool_calls_become_errors_in_the_text(calculator, char_tokenizer, reply, message):
    model = ScriptedModel([reply, " done"])
    out = generate_with_tools(model, "Q: ", char_tokenizer, [calculator], max_new_tokens=2000)
    assert len(out.calls) == 1 and out.calls[0].error
    assert message in out.calls[0].result
    assert "<result>error: " in out.text and out.text.endswith(" done")


def test_crashed_server_gives_a_tool_error_and_generation_continues(calculator, char_tokenizer):
    crash = MCPServerProcess([sys.executable, str(SERVERS / "crash_server.py")], timeout=20).start()
    try:
        model = ScriptedModel(["<tool:crash>x</tool>", " after<tool:crash>y</tool>", " end"])
        out = generate_with_tools(model, "Q: ", char_tokenizer, [calculator, crash], max_new_tokens=500)
        assert [c.error for c in out.calls] == [True, True]
        assert "crash" in out.calls[0].result and out.text.endswith(" end")
        assert out.calls[1].result == out.calls[0].result  # a dead server stays reported as dead
    finally:
        crash.close()


def test_hung_server_times_out_within_the_bound(calculator, char_tokenizer):
    hang = MCPServerProcess([sys.executable, str(SERVERS / "hang_server.py")], timeout=20).start()
    try:
        model = ScriptedModel(["<tool:hang>x</tool>", " moved on"])
        start = time.perf_counter()
        out = generate_with_tools(model, "Q: ", char_tokenizer, [calculator, hang], max_new_tokens=500, tool_timeout=1.0)
        assert time.perf_counter() - start < 5
        assert out.calls[0].error and "timed out after 1 s" in out.calls[0].result
        assert out.text.endswith(" moved on")
    finally:
        start = time.perf_counter()
        hang.close()
        assert time.perf_counter() - start < 15


def test_a_server_that_cannot_start_is_a_clear_error():
    with pytest.raises(ToolError, match="failed|did not answer"):
        MCPServerProcess([sys.executable, "-c", "import sys; sys.exit(1)"], timeout=5, start_timeout=20).start()


def test_batched_generation_matches_one_prompt_at_a_time(calculator, char_tokenizer):
    from graftkit.hybrid.tools.batch import generate_with_tools_batch

    from .conftest import BatchScriptedModel

    script = {"Q: 37*41?\n": ["A: <tool:calculate>37*41</tool>", " so 1517.\nQ: next"],
              "Q: hi\n": ["A: hello\nQ: more"],
              "Q: 2+2 then 3*3\n": ["<tool:calculate>2+2</tool>", " and <tool:calculate>3*3</tool>", " done\n"],
              "Q: bad\n": ["<tool:calculate>__import__('os')</tool>", " oops\n"]}
    prompts = list(script)
    batch = generate_with_tools_batch(BatchScriptedModel(script), prompts, char_tokenizer, [calculator],
                                      max_new_tokens=200, stop=["\n"], batch_size=3)
    single = [generate_with_tools(ScriptedModel(script[p]), p, char_tokenizer, [calculator], max_new_tokens=200,
                                  stop=["\n"]) for p in prompts]
    assert [b.text for b in batch] == [s.text for s in single]
    assert batch[0].text == "A: <tool:calculate>37*41</tool><result>1517</result> so 1517."
    assert batch[1].text == "A: hello" and not batch[1].calls
    assert [c.result for c in batch[2].calls] == ["4", "9"]
    assert batch[3].calls[0].error and "found Call" in batch[3].calls[0].result
    assert char_tokenizer.padding_side == "right"  # restored
