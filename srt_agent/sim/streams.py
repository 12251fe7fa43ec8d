"""Token sinks: turn the scheduler's tokens into SSE chunks or a final JSON body.

Streaming sinks write straight to the connection's transport from inside the scheduler's pass,
framing HTTP/1.1 chunked encoding themselves (the response headers were sent by
`StreamResponse.prepare`, and `write_eof` ends the body). Each chunk is a pre-built JSON prefix,
the tokens' pre-escaped text and a pre-built suffix: no json.dumps per token. A slow or gone
client never blocks the scheduler: a closing transport just marks the request aborted.

Chunk shapes follow SGLang's OpenAI server (compact JSON, `usage: null` on content chunks, a
`choices: []` usage chunk when `stream_options.include_usage`, then `data: [DONE]`) and its
native /generate stream (cumulative `text`, `meta_info`).
"""

from __future__ import annotations

import asyncio
import json

from srt_agent.sim.engine import Generation
from srt_agent.sim.vocab import Vocab

DONE = "data: [DONE]\n\n"


def usage_json(prompt_tokens: int, completion_tokens: int) -> str:
    return (f'{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens + completion_tokens},'
            f'"completion_tokens":{completion_tokens},"prompt_tokens_details":null}}')


def finish_json(finish: str | None, eos_id: int) -> str:
    if finish is None:
        return '"finish_reason":null,"matched_stop":null'
    if finish == "stop":
        return f'"finish_reason":"stop","matched_stop":{eos_id}'
    return f'"finish_reason":"{finish}","matched_stop":null'


class ChunkWriter:
    """Writes SSE text to the client socket, chunk-framed if the response is chunked."""

    __slots__ = ("chunked", "transport")

    def __init__(self, transport: asyncio.Transport | None, chunked: bool) -> None:
        self.transport = transport
        self.chunked = chunked

    def write(self, text: str) -> bool:
        t = self.transport
        if t is None or t.is_closing():
            return False
        data = text.encode()
        if self.chunked:
            t.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            t.write(data)
        return True


class _SSEStream:
    """Shared logic: batch tokens per stream_interval, write, end with usage and [DONE].

    Subclasses set `prefix` and `suffix` (a content chunk is prefix + escaped text + suffix) and
    implement `final_chunk` and `usage_chunk`.
    """

    __slots__ = ("cand", "include_usage", "interval", "io", "pending", "prefix", "sent_any", "suffix")

    def __init__(self, io: ChunkWriter, vocab: Vocab, interval: int, include_usage: bool) -> None:
        self.io = io
        self.cand = vocab.candidate_json
        self.interval = interval
        self.pending: list[int] = []
        self.include_usage = include_usage
        self.sent_any = False
        self.prefix = self.suffix = ""

    def push(self, gen: Generation, index: int, finish: str | None) -> None:
        if finish is None and index >= 0:  # the common case: one more token, stream goes on
            if self.interval == 1:
                text = self.cand[index]
            else:
                pending = self.pending
                pending.append(index)
                if self.sent_any and len(pending) < self.interval:
                    return
                text = "".join([self.cand[i] for i in pending])
                pending.clear()
            self.sent_any = True
            if not self.io.write(self.prefix + text + self.suffix):
                gen.aborted = True
            return
        if index >= 0:
            self.pending.append(index)
        text = "".join([self.cand[i] for i in self.pending])
        self.pending.clear()
        out = self.final_chunk(text, finish)
        if self.include_usage:
            out += self.usage_chunk(gen)
        if not self.io.write(out + DONE):
            gen.aborted = True

    def final_chunk(self, text: str, finish: str) -> str:
        raise NotImplementedError

    def usage_chunk(self, gen: Generation) -> str:
        raise NotImplementedError


class CompletionStream(_SSEStream):
    __slots__ = ("envelope", "eos_id")

    def __init__(self, io: ChunkWriter, vocab: Vocab, interval: int, include_usage: bool, *, rid: str,
                 created: int, model: str) -> None:
        super().__init__(io, vocab, interval, include_usage)
        self.envelope = (f'{{"id":"{rid}","object":"text_completion","created":{created},'
                         f'"model":{json.dumps(model)}')
        self.prefix = f'data: {self.envelope},"choices":[{{"index":0,"text":"'
        self.suffix = '","logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}\n\n'
        self.eos_id = vocab.eos_id

    def final_chunk(self, text: str, finish: str) -> str:
        return (f'{self.prefix}{text}","logprobs":null,{finish_json(finish, self.eos_id)}}}],'
                f'"usage":null}}\n\n')

    def usage_chunk(self, gen: Generation) -> str:
        return f'data: {self.envelope},"choices":[],"usage":{usage_json(gen.prompt_tokens, gen.n_out)}}}\n\n'


class ChatStream(_SSEStream):
    __slots__ = ("envelope", "eos_id")

    def __init__(self, io: ChunkWriter, vocab: Vocab, interval: int, include_usage: bool, *, rid: str,
                 created: int, model: str) -> None:
        super().__init__(io, vocab, interval, include_usage)
        self.envelope = (f'{{"id":"{rid}","object":"chat.completion.chunk","created":{created},'
                         f'"model":{json.dumps(model)}')
        self.prefix = f'data: {self.envelope},"choices":[{{"index":0,"delta":{{"content":"'
        self.suffix = '"},"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}\n\n'
        self.eos_id = vocab.eos_id

    def role_chunk(self) -> str:
        return (f'data: {self.envelope},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},'
                f'"logprobs":null,"finish_reason":null,"matched_stop":null}}],"usage":null}}\n\n')

    def final_chunk(self, text: str, finish: str) -> str:
        return (f'{self.prefix}{text}"}},"logprobs":null,{finish_json(finish, self.eos_id)}}}],'
                f'"usage":null}}\n\n')

    def usage_chunk(self, gen: Generation) -> str:
        return f'data: {self.envelope},"choices":[],"usage":{usage_json(gen.prompt_tokens, gen.n_out)}}}\n\n'


def generate_finish(finish: str | None, n_out: int, eos_id: int) -> str:
    if finish is None:
        return "null"
    if finish == "stop":
        return f'{{"type":"stop","matched":{eos_id}}}'
    return f'{{"type":"length","length":{n_out}}}'


class GenerateStream(_SSEStream):
    """SGLang native /generate stream: each event carries the cumulative text so far."""

    __slots__ = ("eos_id", "rid", "t0", "text_so_far")

    def __init__(self, io: ChunkWriter, vocab: Vocab, interval: int, *, rid: str, t0: float) -> None:
        super().__init__(io, vocab, interval, False)
        self.rid = json.dumps(rid)
        self.text_so_far = ""
        self.eos_id = vocab.eos_id
        self.t0 = t0

    def push(self, gen: Generation, index: int, finish: str | None) -> None:
        pending = self.pending
        if index >= 0:
            pending.append(index)
        if finish is None and self.sent_any and len(pending) < self.interval:
            return
        cand = self.cand
        self.text_so_far += "".join([cand[i] for i in pending])
        pending.clear()
        self.sent_any = True
        e2e = asyncio.get_running_loop().time() - self.t0
        out = (f'data: {{"text":"{self.text_so_far}","meta_info":{{"id":{self.rid},'
               f'"finish_reason":{generate_finish(finish, gen.n_out, self.eos_id)},'
               f'"prompt_tokens":{gen.prompt_tokens},"completion_tokens":{gen.n_out},'
               f'"cached_tokens":0,"e2e_latency":{e2e:.6f}}},"index":0}}\n\n')
        if finish is not None:
            out += DONE
        if not self.io.write(out):
            gen.aborted = True


class Collector:
    """Non-streaming sink: the server builds the body from `gen.tokens` when `gen.done` resolves."""

    __slots__ = ()

    def push(self, gen: Generation, index: int, finish: str | None) -> None:
        return None


COLLECTOR = Collector()
