from __future__ import annotations

from typing import Any

from agentmw import Call


def test_set_model_updates_a_passed_model_keyword() -> None:
    call = Call("turn", "f", lambda **kw: kw, "a", kwargs={"model": "a"})
    call.set_model("b")
    assert (call.model, call.kwargs) == ("b", {"model": "b"})


def test_set_model_fills_a_defaulted_model_parameter() -> None:
    def ask(prompt: str, *, model: str = "a") -> Any:
        return model

    call = Call("turn", "ask", ask, "a", ("hi",))
    call.set_model("b")
    assert call.kwargs == {"model": "b"}


def test_set_model_leaves_functions_without_a_model_parameter_alone() -> None:
    def ask(prompt: str, **options: Any) -> Any:
        return options

    call = Call("turn", "ask", ask, "a", ("hi",))
    call.set_model("b")
    assert (call.model, call.kwargs) == ("b", {})
    builtin = Call("turn", "len", len, "a")
    builtin.set_model("b")
    assert builtin.kwargs == {}


def test_set_model_rewrites_a_positional_model_argument() -> None:
    def ask(prompt: str, model: str = "default") -> str:
        return f"{prompt}@{model}"

    call = Call("turn", "ask", ask, "a", ("hi", "a"), {})
    call.set_model("b")
    assert call.args == ("hi", "b")
    assert call.kwargs == {}
    assert call.fn(*call.args, **call.kwargs) == "hi@b"
