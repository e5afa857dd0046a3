"""An agent over the real OpenAI client, pointed at a local stub server this script starts.

The stub answers the first request with a tool call and the second with the final answer,
as OpenAI's Chat Completions API would; the first attempt gets a 429 with `retry-after-ms`,
which the `Retry` layer waits out (the SDK's own retries are off: `max_retries=0`).
Runs offline in about a second: `python examples/openai_agent.py`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

from agentmw import Agent, ModelPricing, Stack, agent_tool, register_pricing
from agentmw.guardrails import PIIRedactor
from agentmw.integrations import instrument
from agentmw.middleware import Guardrails, Retry

MODEL = "gpt-4o-mini"


def _completion(message: dict[str, Any], prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "A-17"})},
}
SCRIPT: list[tuple[int, dict[str, str], dict[str, Any]]] = [
    (429, {"retry-after-ms": "50"}, {"error": {"message": "slow down", "code": "rate_limit"}}),
    (200, {}, _completion(
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}, 40, 12
    )),
    (200, {}, _completion({"role": "assistant", "content": (
        "Order A-17 ships tomorrow; I'll confirm to jane@example.com."
    )}, 70, 18)),
]  # fmt: skip


class StubOpenAI(BaseHTTPRequestHandler):
    """Answers POST /v1/chat/completions from SCRIPT, in order."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, headers, body = SCRIPT.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"content-type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@agent_tool
def lookup_order(order_id: str) -> str:
    """The tool the model asks for."""
    return json.dumps({"order_id": order_id, "status": "ships tomorrow"})


def main() -> None:
    # Illustrative prices (USD per million tokens); register your provider's real ones.
    register_pricing(MODEL, ModelPricing(input_per_million=0.15, output_per_million=0.6))
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    # max_retries=0: our Retry layer retries (and honours Retry-After), not the SDK as well.
    client = instrument(openai.OpenAI(base_url=base_url, api_key="sk-stub", max_retries=0))
    agent = Agent(
        "support",
        stack=Stack([Guardrails([PIIRedactor(["email"], stages=["output"])]), Retry(base=0.01)]),
    )
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}}}}}]  # fmt: skip
    messages: list[Any] = [{"role": "user", "content": "Where is my order A-17?"}]
    try:
        with agent.session() as session:
            while True:
                reply = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
                message = reply.choices[0].message
                if not message.tool_calls:
                    break
                messages.append(message.model_dump(exclude_none=True))
                for call in message.tool_calls:
                    result = lookup_order(**json.loads(call.function.arguments))
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    finally:
        server.shutdown()
        server.server_close()
    print("answer:", message.content)
    usage = session.ledger.usage
    print(f"turns: {session.iterations}, tool calls: {session.tool_calls}")
    print(f"tokens: {usage.input_tokens} in, {usage.output_tokens} out")
    print("cost:", session.summary()["cost"])


if __name__ == "__main__":
    main()
