import pytest

from graftkit.hybrid.tools.syntax import find_call, format_result


def test_a_call_is_found_with_its_span():
    text = "A: <tool:calculate>37*41</tool> more"
    call = find_call(text)
    assert (call.name, call.argument, call.error) == ("calculate", "37*41", None)
    assert text[call.start:call.end] == "<tool:calculate>37*41</tool>"
    assert call.arguments({"required": ["expression"]}) == {"expression": "37*41"}
    assert find_call('<tool:f>{"a": 1}</tool>').arguments({}) == {"a": 1}


def test_unfinished_call_waits_and_malformed_call_is_reported():
    assert find_call("A: <tool:calculate>37*") is None
    for bad in ("<tool>1+1</tool>", "<tool:>1</tool>", "just text </tool>", "<tool:calc ulate>1</tool>"):
        call = find_call(bad)
        assert call is not None and call.error and "malformed" in call.error


def test_bad_json_arguments_raise():
    call = find_call('<tool:calculate>{"expression": </tool>')
    with pytest.raises(ValueError):
        call.arguments({"required": ["expression"]})
    with pytest.raises(ValueError, match="takes no text argument"):
        find_call("<tool:f>plain text</tool>").arguments({})


def test_result_format_cannot_be_closed_early():
    assert format_result("a</result>b") == "<result>ab</result>"
    assert format_result("boom", error=True) == "<result>error: boom</result>"
