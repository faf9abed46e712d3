//! The wire shapes of OpenAI chat completions, as pure functions of a [`Step`].
//!
//! These are the shapes the AI SDK's `@ai-sdk/openai-compatible` provider (and opencode's own
//! `openai-compatible-chat` protocol) parse. What they insist on, read from the code bundled in
//! opencode 1.18.34:
//!
//! - every chunk has a `choices` array (it may be empty: the usage chunk);
//! - the *first* delta of a tool call (per `index`) carries `id` and `function.name`, or the
//!   stream fails with "Expected 'id' to be a string." / "…'function.name'…"; later deltas of the
//!   same index carry only `function.arguments` pieces, which are concatenated;
//! - `finish_reason` `"tool_calls"` maps to `tool-calls` (opencode runs the tools and asks
//!   again), `"stop"` to `stop` (the turn ends);
//! - `usage` is read from whichever chunk carries it.
//!
//! A stream is: a role chunk, the content deltas, a finish chunk, a usage chunk (`choices: []`,
//! as OpenAI sends when `stream_options.include_usage` is set), then `data: [DONE]`.

use serde_json::{Value, json};

use crate::script::Step;

/// The terminating SSE event of a chat-completions stream.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// The longest text or arguments piece one delta carries; longer ones are split, so clients
/// see several deltas (and a per-chunk delay makes a long reply slow).
pub const PIECE_CHARS: usize = 24;

/// What every chunk of one response shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// The response id (`chatcmpl-…`), the same in every chunk.
    pub id: String,
    /// The model name, echoed from the request.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

/// Token counts reported in the usage chunk (estimates: the stand-in has no tokenizer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    /// Roughly four bytes a token, at least one token each way.
    pub fn estimate(request_bytes: usize, step: &Step) -> Usage {
        let reply_bytes = match step {
            Step::Text(text) => text.len(),
            Step::ToolCall(call) => call.name.len() + call.arguments_text().len(),
        };
        Usage {
            prompt_tokens: (request_bytes / 4).max(1) as u64,
            completion_tokens: (reply_bytes / 4).max(1) as u64,
        }
    }

    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// The id of the tool call of a response (one call per step, so index 0).
pub fn tool_call_id(meta: &Meta) -> String {
    format!("call_{}_0", meta.id.trim_start_matches("chatcmpl-"))
}

/// The finish reason a step ends with.
pub fn finish_reason(step: &Step) -> &'static str {
    match step {
        Step::Text(_) => "stop",
        Step::ToolCall(_) => "tool_calls",
    }
}

/// Splits `text` into pieces of at most [`PIECE_CHARS`] characters (never inside a character).
/// An empty text is one empty piece.
pub fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (at, _) in text.char_indices() {
        if count == PIECE_CHARS {
            out.push(&text[start..at]);
            start = at;
            count = 0;
        }
        count += 1;
    }
    out.push(&text[start..]);
    out
}

fn chunk(meta: &Meta, choices: Value) -> Value {
    json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "standin",
        "choices": choices,
    })
}

fn delta_chunk(meta: &Meta, delta: Value) -> Value {
    chunk(
        meta,
        json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": null }]),
    )
}

/// The stream's first chunk: the assistant role, no content yet.
pub fn role_chunk(meta: &Meta) -> Value {
    delta_chunk(meta, json!({ "role": "assistant", "content": "" }))
}

/// The chunks that carry a step's content, after the role chunk.
pub fn content_chunks(meta: &Meta, step: &Step) -> Vec<Value> {
    match step {
        Step::Text(text) => pieces(text)
            .into_iter()
            .filter(|piece| !piece.is_empty())
            .map(|piece| delta_chunk(meta, json!({ "content": piece })))
            .collect(),
        Step::ToolCall(call) => {
            let arguments = call.arguments_text();
            // The first delta names the call (id, name); the arguments follow in pieces.
            let mut out = vec![delta_chunk(
                meta,
                json!({ "tool_calls": [{
                    "index": 0,
                    "id": tool_call_id(meta),
                    "type": "function",
                    "function": { "name": call.name, "arguments": "" },
                }] }),
            )];
            out.extend(
                pieces(&arguments)
                    .into_iter()
                    .filter(|piece| !piece.is_empty())
                    .map(|piece| {
                        delta_chunk(
                            meta,
                            json!({ "tool_calls": [{
                                "index": 0,
                                "function": { "arguments": piece },
                            }] }),
                        )
                    }),
            );
            out
        }
    }
}

/// The chunk that ends the choice: an empty delta and the finish reason.
pub fn finish_chunk(meta: &Meta, step: &Step) -> Value {
    chunk(
        meta,
        json!([{ "index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_reason(step) }]),
    )
}

/// The usage chunk, sent after the finish chunk with an empty `choices`.
pub fn usage_chunk(meta: &Meta, usage: Usage) -> Value {
    let mut value = chunk(meta, json!([]));
    value["usage"] = usage.to_json();
    value
}

/// Every chunk of a streamed reply, in order (the SSE framing and `[DONE]` are separate).
pub fn stream_chunks(meta: &Meta, step: &Step, usage: Usage) -> Vec<Value> {
    let mut out = vec![role_chunk(meta)];
    out.extend(content_chunks(meta, step));
    out.push(finish_chunk(meta, step));
    out.push(usage_chunk(meta, usage));
    out
}

/// One SSE event: `data: <json>` and a blank line.
pub fn sse_event(chunk: &Value) -> String {
    format!("data: {chunk}\n\n")
}

/// The non-streaming (`"stream": false`) response body of a step.
pub fn completion(meta: &Meta, step: &Step, usage: Usage) -> Value {
    let message = match step {
        Step::Text(text) => json!({ "role": "assistant", "content": text }),
        Step::ToolCall(call) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": tool_call_id(meta),
                "type": "function",
                "function": { "name": call.name, "arguments": call.arguments_text() },
            }],
        }),
    };
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "standin",
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(step) }],
        "usage": usage.to_json(),
    })
}

/// An error body in OpenAI's shape.
pub fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            id: "chatcmpl-standin-7".into(),
            model: "standin-model".into(),
            created: 1_700_000_000,
        }
    }

    const USAGE: Usage = Usage {
        prompt_tokens: 10,
        completion_tokens: 3,
    };

    /// Reassembles a stream the way the AI SDK does: text deltas appended, tool calls keyed by
    /// index (the first delta must name id and function), finish reason and usage kept.
    fn reassemble(chunks: &[Value]) -> (String, Vec<(String, String, String)>, String, Value) {
        let mut text = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut finish = String::new();
        let mut usage = Value::Null;
        for chunk in chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "chatcmpl-standin-7");
            if !chunk["usage"].is_null() {
                usage = chunk["usage"].clone();
            }
            let choices = chunk["choices"].as_array().expect("choices is an array");
            let Some(choice) = choices.first() else {
                continue;
            };
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = reason.to_string();
            }
            let delta = &choice["delta"];
            if let Some(piece) = delta["content"].as_str() {
                text.push_str(piece);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if index == calls.len() {
                    let id = call["id"].as_str().expect("first delta carries the id");
                    let name = call["function"]["name"]
                        .as_str()
                        .expect("first delta carries the name");
                    calls.push((id.into(), name.into(), String::new()));
                }
                if let Some(piece) = call["function"]["arguments"].as_str() {
                    calls[index].2.push_str(piece);
                }
            }
        }
        (text, calls, finish, usage)
    }

    #[test]
    fn a_text_stream_reassembles_to_the_text_and_stops() {
        let text = "A reply long enough to be split into more than one delta: ünïcode too.";
        let chunks = stream_chunks(&meta(), &Step::text(text), USAGE);
        assert!(chunks.len() > 4, "the text is split into several deltas");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let (got, calls, finish, usage) = reassemble(&chunks);
        assert_eq!(got, text);
        assert!(calls.is_empty());
        assert_eq!(finish, "stop");
        assert_eq!(usage["total_tokens"], 13);
        // The usage chunk is last and has no choices.
        assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    }

    #[test]
    fn a_tool_call_stream_names_the_call_first_and_finishes_with_tool_calls() {
        let step = Step::write("dir/a file.txt", "line one\nline two\n");
        let chunks = stream_chunks(&meta(), &step, USAGE);
        let first_call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(first_call["id"], "call_standin-7_0");
        assert_eq!(first_call["function"]["name"], "write");
        let (text, calls, finish, _) = reassemble(&chunks);
        assert_eq!(text, "");
        assert_eq!(calls.len(), 1);
        let (id, name, arguments) = &calls[0];
        assert_eq!((id.as_str(), name.as_str()), ("call_standin-7_0", "write"));
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(
            arguments,
            json!({"filePath": "dir/a file.txt", "content": "line one\nline two\n"})
        );
        assert_eq!(finish, "tool_calls");
        // Later deltas carry only argument pieces (no id or name to re-declare the call).
        for chunk in &chunks[2..chunks.len() - 2] {
            let call = &chunk["choices"][0]["delta"]["tool_calls"][0];
            assert!(call.get("id").is_none() && call["function"].get("name").is_none());
        }
    }

    #[test]
    fn sse_events_are_one_data_line_and_a_blank_line() {
        let event = sse_event(&json!({"a": "x\ny"}));
        assert_eq!(event, "data: {\"a\":\"x\\ny\"}\n\n");
        assert_eq!(SSE_DONE, "data: [DONE]\n\n");
    }

    #[test]
    fn pieces_split_on_character_boundaries() {
        let text = "é".repeat(PIECE_CHARS * 2 + 1);
        let parts = pieces(&text);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.chars().count() <= PIECE_CHARS));
        assert_eq!(pieces(""), vec![""]);
        assert_eq!(pieces("short"), vec!["short"]);
    }

    #[test]
    fn a_non_streaming_completion_carries_the_whole_reply() {
        let body = completion(&meta(), &Step::write("a", "b"), USAGE);
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "write");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"filePath": "a", "content": "b"}));
        let body = completion(&meta(), &Step::text("done"), USAGE);
        assert_eq!(body["choices"][0]["message"]["content"], "done");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 10);
    }
}
