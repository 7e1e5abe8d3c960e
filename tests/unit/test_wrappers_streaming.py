"""Streamed calls metered through the real OpenAI and Anthropic clients; httpx.MockTransport serves SSE bodies.

The recording publisher below is only the sink of the events (the Kafka path is tested elsewhere).
"""

from __future__ import annotations

import asyncio
import gc
import json

import anthropic
import httpx
import httpx2  # this anthropic release ships on httpx2, a fork with the same API
import openai
import pytest

from integrations.anthropic_wrapper import instrument_anthropic
from integrations.openai_wrapper import instrument_openai
from integrations.streams import estimate_tokens

TAGS = {"team": "search", "cost_center": "cc-1", "use_case": "qa", "environment": "production",
        "workload_type": "inference"}
QUESTION = "What is the capital of France?"          # 30 characters -> 8 estimated input tokens
MESSAGES = [{"role": "user", "content": QUESTION}]


class Recorder:
    def __init__(self):
        self.events = []

    def record(self, **fields):
        self.events.append(fields)


def sse(events) -> bytes:
    """`events`: (event name or None, data dict or raw str) pairs -> an SSE body."""
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}")
        out.append("data: " + (data if isinstance(data, str) else json.dumps(data)))
        out.append("")
    return ("\n".join(out) + "\n").encode()


# -- OpenAI Chat Completions ------------------------------------------------------------------------------------

def _chunk(delta, finish=None, usage=None, choices=True):
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1730000000,
            "model": "gpt-4o-2024-08-06", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [], "usage": usage}


CHAT_USAGE = {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
              "prompt_tokens_details": {"cached_tokens": 1920}, "completion_tokens_details": {"reasoning_tokens": 64}}


def chat_body(include_usage: bool) -> bytes:
    events = [(None, _chunk({"role": "assistant", "content": ""})), (None, _chunk({"content": "Hello"})),
              (None, _chunk({"content": " world"})), (None, _chunk({}, finish="stop"))]
    if include_usage:
        events.append((None, _chunk(None, usage=CHAT_USAGE, choices=False)))
    return sse(events + [(None, "[DONE]")])


class OpenAIServer:
    """Serves chat / responses SSE; records every request body that left the client."""

    def __init__(self, lib=httpx, *, body=None, broken=False):
        self.lib, self.body, self.broken, self.requests = lib, body, broken, []

    def handle(self, request):
        payload = json.loads(request.content)
        self.requests.append(payload)
        if self.body is not None:
            body = self.body
        else:
            body = chat_body(bool((payload.get("stream_options") or {}).get("include_usage")))
        headers = {"content-type": "text/event-stream"}
        if self.broken:
            return self.lib.Response(200, headers=headers, content=self._broken(body))
        return self.lib.Response(200, headers=headers, content=body)

    def _broken(self, body):
        half = body[: len(body) // 2]
        half = half[: half.rindex(b"\n\n") + 2]   # whole events only, then the connection drops

        def gen():
            yield half
            raise self.lib.ReadError("connection reset by peer")
        return gen()

    def sync_client(self):
        return openai.OpenAI(api_key="sk-test", base_url="http://api.test/v1", max_retries=0,
                             http_client=httpx.Client(transport=httpx.MockTransport(self.handle)))

    def async_client(self):
        async def ahandle(request):
            response = self.handle(request)
            if self.broken:
                chunks = response.stream

                async def agen():
                    for part in chunks:
                        yield part
                return httpx.Response(200, headers=response.headers, content=agen())
            return response
        return openai.AsyncOpenAI(api_key="sk-test", base_url="http://api.test/v1", max_retries=0,
                                  http_client=httpx.AsyncClient(transport=httpx.MockTransport(ahandle)))


def test_openai_chat_stream_publishes_one_event_with_the_final_usage_chunk():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                            spendstream_tags={"project": "faq"})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello world"
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    [ev] = rec.events
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"], ev["reasoning_tokens"]) == (86, 1920, 236, 64)
    assert (ev["provider"], ev["model"], ev["request_id"], ev["status"]) == ("openai", "gpt-4o-2024-08-06", "chatcmpl-s1", "success")
    assert ev["team"] == "search" and ev["project"] == "faq"
    assert ev["attributes"] == {"stream": "true", "stream_end": "complete"}
    stream.close()                                     # closing after the end publishes nothing more
    assert len(rec.events) == 1


def test_openai_chat_stream_keeps_the_callers_stream_options():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": False}):
        pass
    for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                stream_options={"include_obfuscation": False}):
        pass
    assert server.requests[0]["stream_options"] == {"include_usage": False}
    assert server.requests[1]["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    no_usage, with_usage = rec.events
    # the caller turned usage off: the stream completed, so status success, but the tokens are estimated
    assert no_usage["status"] == "success" and no_usage["attributes"]["usage_estimated"] == "true"
    assert (no_usage["input_tokens"], no_usage["output_tokens"]) == (8, estimate_tokens(len("Hello world")))  # 8, 3
    assert with_usage["input_tokens"] == 86 and "usage_estimated" not in with_usage["attributes"]


def test_openai_chat_stream_abandoned_after_the_first_chunk_publishes_an_estimate_on_close():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break                                       # read "Hello", then walk away
    assert rec.events == []                             # nothing until the stream ends
    stream.close()
    [ev] = rec.events
    assert ev["status"] == "cancelled"
    assert ev["attributes"] == {"stream": "true", "stream_end": "closed", "usage_estimated": "true"}
    assert (ev["input_tokens"], ev["output_tokens"]) == (8, 2)    # ceil(30/4), ceil(len("Hello")/4)
    assert ev["model"] == "gpt-4o-2024-08-06" and ev["request_id"] == "chatcmpl-s1"


def test_openai_chat_stream_closed_after_finish_reason_reads_the_usage_chunk_first():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].finish_reason:
            break                                       # the usage chunk is still unread
    stream.close()
    [ev] = rec.events
    assert (ev["input_tokens"], ev["output_tokens"], ev["status"]) == (86, 236, "success")
    assert ev["attributes"] == {"stream": "true", "stream_end": "closed"}

    async def go():
        aclient = instrument_openai(server.async_client(), rec, tags=TAGS)
        async with aclient.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as astream:
            async for event in astream:
                if event.type == "content.done":
                    break
    asyncio.run(go())
    ev = rec.events[1]
    assert (ev["input_tokens"], ev["output_tokens"], ev["status"]) == (86, 236, "success")
    assert ev["attributes"] == {"stream": "true", "stream_end": "context_exit"}


def test_openai_chat_stream_abandoned_inside_with_publishes_on_context_exit():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        next(stream)
    [ev] = rec.events
    assert ev["attributes"]["stream_end"] == "context_exit" and ev["attributes"]["usage_estimated"] == "true"
    assert (ev["status"], ev["output_tokens"]) == ("cancelled", 0)


def test_openai_chat_stream_dropped_without_close_publishes_at_garbage_collection():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(stream), next(stream)
    del stream
    gc.collect()
    [ev] = rec.events
    assert ev["attributes"]["stream_end"] == "gc" and ev["output_tokens"] == 2


def test_openai_chat_stream_broken_mid_way_publishes_one_error_event():
    server, rec = OpenAIServer(broken=True), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    stream.close()
    [ev] = rec.events
    assert ev["status"] == "error"
    assert ev["attributes"] == {"stream": "true", "stream_end": "error", "error_type": "APIConnectionError",
                                "usage_estimated": "true"}
    assert ev["input_tokens"] == 8 and ev["output_tokens"] >= 1


def test_openai_chat_stream_malformed_sse_publishes_one_error_event():
    body = sse([(None, _chunk({"content": "Hello"})), (None, "{not json")])
    server, rec = OpenAIServer(body=body), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    with pytest.raises(ValueError):                    # json.JSONDecodeError
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    [ev] = rec.events
    assert ev["status"] == "error" and ev["attributes"]["error_type"] == "JSONDecodeError"
    assert ev["output_tokens"] == 2


def test_openai_chat_stream_rejected_before_streaming_publishes_an_error_event():
    def handle(request):
        return httpx.Response(429, json={"error": {"message": "Rate limit", "type": "rate_limit_error"}})
    rec = Recorder()
    client = instrument_openai(openai.OpenAI(api_key="sk-test", base_url="http://api.test/v1", max_retries=0,
                                             http_client=httpx.Client(transport=httpx.MockTransport(handle))),
                               rec, tags=TAGS)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    [ev] = rec.events
    assert (ev["status"], ev["model"], ev["attributes"]["error_type"]) == ("error", "gpt-4o", "RateLimitError")


def test_openai_chat_stream_helper_is_metered_through_create():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello world"
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    [ev] = rec.events
    assert (ev["input_tokens"], ev["output_tokens"], ev["status"]) == (86, 236, "success")


def test_openai_stream_helpers_abandoned_publish_on_context_exit_with_call_tags():
    server, rec = OpenAIServer(), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES,
                                        spendstream_tags={"project": "helper"}) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
        assert rec.events == []
    [ev] = rec.events                                  # published at exit, not left to the garbage collector
    assert ev["attributes"]["stream_end"] == "context_exit" and ev["attributes"]["usage_estimated"] == "true"
    assert ev["project"] == "helper" and ev["status"] == "cancelled"

    async def go():
        aserver = OpenAIServer(body=responses_body())
        aclient = instrument_openai(aserver.async_client(), rec, tags=TAGS)
        async with aclient.responses.stream(model="gpt-4.1", input=QUESTION,
                                            spendstream_tags={"project": "async-helper"}) as astream:
            async for event in astream:
                if event.type == "response.output_text.delta":
                    break
        async with aclient.responses.stream(model="gpt-4.1", input=QUESTION) as astream:
            final = await astream.get_final_response()
        assert final.usage.output_tokens == 350
    asyncio.run(go())
    abandoned, complete = rec.events[1:]
    assert abandoned["project"] == "async-helper" and abandoned["attributes"]["stream_end"] == "context_exit"
    assert (complete["input_tokens"], complete["output_tokens"], complete["status"]) == (176, 250, "success")
    assert "project" not in complete


def test_async_openai_chat_stream_complete_abandoned_and_broken():
    async def go():
        server, rec = OpenAIServer(), Recorder()
        client = instrument_openai(server.async_client(), rec, tags=TAGS)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass
        [done] = rec.events
        assert server.requests[0]["stream_options"] == {"include_usage": True}
        assert (done["input_tokens"], done["cached_input_tokens"], done["output_tokens"]) == (86, 1920, 236)
        assert done["attributes"] == {"stream": "true", "stream_end": "complete"}

        async with await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as s2:
            async for chunk in s2:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
        abandoned = rec.events[1]
        assert abandoned["attributes"] == {"stream": "true", "stream_end": "context_exit", "usage_estimated": "true"}
        assert (abandoned["status"], abandoned["input_tokens"], abandoned["output_tokens"]) == ("cancelled", 8, 2)

        s3 = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        await s3.__anext__()
        await s3.close()
        assert rec.events[2]["attributes"]["stream_end"] == "closed"

        broken = OpenAIServer(broken=True)
        client2 = instrument_openai(broken.async_client(), rec, tags=TAGS)
        s4 = await client2.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for _ in s4:
                pass
        await s4.close()
        assert len(rec.events) == 4
        assert rec.events[3]["status"] == "error" and rec.events[3]["attributes"]["stream_end"] == "error"
    asyncio.run(go())


# -- OpenAI Responses API ---------------------------------------------------------------------------------------

def _response(status, usage=None, output=()):
    return {"id": "resp_s1", "object": "response", "created_at": 1730000000, "status": status,
            "model": "gpt-4.1-2025-04-14", "output": list(output), "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "service_tier": "default", "usage": usage}


RESP_USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 350,
              "output_tokens_details": {"reasoning_tokens": 100}, "total_tokens": 1550}
ANSWER = ["Paris", " is the capital."]


def _message(status, text):
    return {"id": "msg_1", "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text is not None else []}


def responses_body(final="response.completed"):
    text = "".join(ANSWER)
    events = [
        ("response.created", {"type": "response.created", "response": _response("in_progress")}),
        ("response.in_progress", {"type": "response.in_progress", "response": _response("in_progress")}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": _message("in_progress", None)}),
        ("response.content_part.added", {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0,
                                         "content_index": 0,
                                         "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
    ]
    for piece in ANSWER:
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
            "delta": piece, "logprobs": []}))
    events += [
        ("response.output_text.done", {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0,
                                       "content_index": 0, "text": text, "logprobs": []}),
        ("response.content_part.done", {"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0,
                                        "content_index": 0,
                                        "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                       "item": _message("completed", text)}),
    ]
    if final == "response.completed":
        events.append((final, {"type": final,
                               "response": _response("completed", RESP_USAGE, [_message("completed", text)])}))
    elif final == "response.failed":
        failed = {**_response("failed"), "error": {"code": "server_error", "message": "boom"}}
        events.append((final, {"type": final, "response": failed}))
    return sse([(name, {**data, "sequence_number": i}) for i, (name, data) in enumerate(events)])


def test_openai_responses_stream_publishes_usage_from_response_completed():
    server, rec = OpenAIServer(body=responses_body()), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    kinds = [e.type for e in client.responses.create(model="gpt-4.1", input=QUESTION, stream=True)]
    assert kinds[-1] == "response.completed"
    assert "stream_options" not in server.requests[0]          # only Chat Completions needs include_usage
    [ev] = rec.events
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"], ev["reasoning_tokens"]) == (176, 1024, 250, 100)
    assert (ev["model"], ev["request_id"], ev["status"]) == ("gpt-4.1-2025-04-14", "resp_s1", "success")
    assert ev["attributes"] == {"stream": "true", "stream_end": "complete"}


def test_openai_responses_stream_abandoned_and_failed():
    server, rec = OpenAIServer(body=responses_body()), Recorder()
    client = instrument_openai(server.sync_client(), rec, tags=TAGS)
    with client.responses.create(model="gpt-4.1", input=QUESTION, instructions="Be brief.", stream=True) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
    [abandoned] = rec.events
    assert abandoned["attributes"]["usage_estimated"] == "true" and abandoned["status"] == "cancelled"
    # input: ceil((30 + len("Be brief.")) / 4) = 10; output: ceil(len("Paris") / 4) = 2
    assert (abandoned["input_tokens"], abandoned["output_tokens"]) == (10, 2)

    server.body = responses_body("response.failed")
    list(client.responses.create(model="gpt-4.1", input=QUESTION, stream=True))
    failed = rec.events[1]
    assert failed["status"] == "error" and failed["attributes"]["error_type"] == "response.failed"


def test_async_openai_responses_stream_is_metered():
    async def go():
        server, rec = OpenAIServer(body=responses_body()), Recorder()
        client = instrument_openai(server.async_client(), rec, tags=TAGS)
        stream = await client.responses.create(model="gpt-4.1", input=QUESTION, stream=True)
        async for _ in stream:
            pass
        [ev] = rec.events
        assert (ev["input_tokens"], ev["output_tokens"], ev["status"]) == (176, 250, "success")
    asyncio.run(go())


# -- Anthropic --------------------------------------------------------------------------------------------------

def anthropic_body(stop_after=None, error=False):
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_s1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 512,
                      "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Paris is the capital"}}),
    ]
    if error:
        events.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    events += [
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": " of France."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 393}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events)


def _anthropic(body, *, asynchronous=False, requests=None):
    def handle(request):
        if requests is not None:
            requests.append(json.loads(request.content))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    transport = httpx2.MockTransport(handle)
    if asynchronous:
        return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url="http://api.test", max_retries=0,
                                        http_client=httpx2.AsyncClient(transport=transport))
    return anthropic.Anthropic(api_key="sk-ant-test", base_url="http://api.test", max_retries=0,
                               http_client=httpx2.Client(transport=transport))


def _check_anthropic_full(ev):
    assert (ev["input_tokens"], ev["output_tokens"], ev["cache_write_tokens"], ev["cached_input_tokens"]) == (21, 393, 188086, 512)
    assert (ev["provider"], ev["model"], ev["request_id"], ev["status"]) == ("anthropic", "claude-sonnet-4-5", "msg_s1", "success")
    assert "usage_estimated" not in ev["attributes"]


def test_anthropic_create_stream_publishes_message_start_and_delta_usage():
    rec, requests = Recorder(), []
    client = instrument_anthropic(_anthropic(anthropic_body(), requests=requests), rec, tags=TAGS)
    stream = client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES, stream=True)
    kinds = [e.type for e in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert requests[0]["stream"] is True and "stream_options" not in requests[0]
    [ev] = rec.events
    _check_anthropic_full(ev)
    assert ev["attributes"] == {"stream": "true", "stream_end": "complete"}


def test_anthropic_messages_stream_helper_is_metered():
    rec = Recorder()
    client = instrument_anthropic(_anthropic(anthropic_body()), rec, tags=TAGS)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES,
                                spendstream_tags={"project": "geo"}) as stream:
        assert "".join(stream.text_stream) == "Paris is the capital of France."
        assert stream.get_final_message().usage.output_tokens == 393
    [ev] = rec.events
    _check_anthropic_full(ev)
    assert ev["project"] == "geo" and ev["attributes"]["stream_end"] == "complete"


def test_anthropic_stream_abandoned_keeps_exact_input_and_estimates_output():
    rec = Recorder()
    client = instrument_anthropic(_anthropic(anthropic_body()), rec, tags=TAGS)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES) as stream:
        for text in stream.text_stream:
            break                                        # "Paris is the capital" (20 chars)
    [ev] = rec.events
    assert ev["attributes"] == {"stream": "true", "stream_end": "context_exit", "usage_estimated": "true"}
    assert ev["status"] == "cancelled"
    # input and cache tokens are exact (message_start); output = max(1 reported, ceil(20 / 4) = 5)
    assert (ev["input_tokens"], ev["cache_write_tokens"], ev["cached_input_tokens"], ev["output_tokens"]) == (21, 188086, 512, 5)

    stream2 = client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES, stream=True)
    next(stream2)
    stream2.close()
    assert rec.events[1]["attributes"]["stream_end"] == "closed" and rec.events[1]["output_tokens"] == 1


def test_anthropic_stream_error_event_mid_way_publishes_one_error_event():
    rec = Recorder()
    client = instrument_anthropic(_anthropic(anthropic_body(error=True)), rec, tags=TAGS)
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES) as stream:
            stream.until_done()
    [ev] = rec.events
    assert ev["status"] == "error" and ev["attributes"]["stream_end"] == "error"
    assert ev["attributes"]["usage_estimated"] == "true" and ev["input_tokens"] == 21 and ev["output_tokens"] == 5


def test_anthropic_stream_rejected_before_streaming_publishes_error_without_estimate():
    def handle(request):
        return httpx2.Response(429, json={"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}})
    rec = Recorder()
    client = instrument_anthropic(anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://api.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handle))), rec, tags=TAGS)
    with pytest.raises(anthropic.RateLimitError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES):
            pass
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES, stream=True)
    assert len(rec.events) == 2
    for ev in rec.events:
        assert (ev["status"], ev["model"], ev["attributes"]["error_type"]) == ("error", "claude-sonnet-4-5", "RateLimitError")
        assert ev.get("input_tokens", 0) == 0 and ev.get("output_tokens", 0) == 0
        assert "usage_estimated" not in ev["attributes"]


def test_async_anthropic_create_stream_and_messages_stream():
    async def go():
        rec = Recorder()
        client = instrument_anthropic(_anthropic(anthropic_body(), asynchronous=True), rec, tags=TAGS)
        stream = await client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES,
                                              stream=True)
        async for _ in stream:
            pass
        _check_anthropic_full(rec.events[0])

        async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES) as s2:
            message = await s2.get_final_message()
        assert message.usage.output_tokens == 393
        _check_anthropic_full(rec.events[1])

        async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES) as s3:
            async for text in s3.text_stream:
                break
        abandoned = rec.events[2]
        assert abandoned["attributes"]["usage_estimated"] == "true" and abandoned["output_tokens"] == 5

        broken = instrument_anthropic(_anthropic(anthropic_body(error=True), asynchronous=True), rec, tags=TAGS)
        s4 = await broken.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES, stream=True)
        with pytest.raises(anthropic.APIStatusError):
            async for _ in s4:
                pass
        await s4.close()
        assert len(rec.events) == 4 and rec.events[3]["status"] == "error"
    asyncio.run(go())
